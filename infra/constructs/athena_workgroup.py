"""An Athena workgroup whose query results are always written encrypted to a fixed place."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_athena as athena
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


@dataclass(frozen=True)
class AthenaWorkgroupProps:
    name: str
    results_bucket: s3.IBucket
    results_prefix: str
    encryption_key: kms.IKey


class AthenaWorkgroup(Construct):
    """Enforces its result location and SSE-KMS, so no client setting can write results unencrypted."""

    def __init__(self, scope: Construct, construct_id: str, props: AthenaWorkgroupProps) -> None:
        super().__init__(scope, construct_id)
        self.name = props.name
        self.results_location = f"s3://{props.results_bucket.bucket_name}/{props.results_prefix}/"
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=props.name,
            description="Queries over the raw reviews and the Feature Store offline store",
            state="ENABLED",
            # Query history is not data anyone misses, and a workgroup with history cannot be deleted otherwise;
            # the results themselves stay in the (retained) bucket.
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.results_location,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=props.encryption_key.key_arn
                    ),
                ),
            ),
        )

    @property
    def arn(self) -> str:
        return self.workgroup.stack.format_arn(
            service="athena", resource="workgroup", resource_name=self.name
        )
