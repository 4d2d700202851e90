"""Data: the KMS key, the four buckets, the Glue catalog of the raw reviews and the Athena workgroup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.athena_workgroup import AthenaWorkgroup, AthenaWorkgroupProps
from infra.constructs.encryption_key import EncryptionKey, EncryptionKeyProps
from infra.constructs.project_storage import ProjectStorage
from infra.constructs.raw_reviews_catalog import RawReviewsCatalog, RawReviewsCatalogProps
from infra.constructs.secure_bucket import SecureBucket, SecureBucketProps
from infra.settings import InfraSettings
from model_build.config import ProjectConfig


@dataclass(frozen=True)
class ProjectData:
    storage: ProjectStorage
    access_logs_bucket: s3.IBucket
    catalog: RawReviewsCatalog
    workgroup: AthenaWorkgroup


def add_project_data(scope: Construct, config: ProjectConfig, settings: InfraSettings) -> ProjectData:
    """Adds the key, the buckets, the catalog and the workgroup to ``scope``: the data stack, or a project."""
    removal_policy = RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY
    key = EncryptionKey(scope, "EncryptionKey", EncryptionKeyProps(config.prefix, removal_policy)).key

    def bucket(construct_id: str, name_prefix: str, logs: SecureBucket | None) -> SecureBucket:
        return SecureBucket(
            scope,
            construct_id,
            SecureBucketProps(
                name_prefix=name_prefix,
                encryption_key=key if logs else None,
                server_access_logs_bucket=logs.bucket if logs else None,
                removal_policy=removal_policy,
                noncurrent_version_retention_days=settings.noncurrent_version_retention_days,
            ),
        )

    access_logs = bucket("AccessLogsBucket", config.access_logs_bucket_prefix, None)
    storage = ProjectStorage(
        key=key,
        data_bucket=bucket("DataBucket", config.data_bucket_prefix, access_logs).bucket,
        artifacts_bucket=bucket("ArtifactsBucket", config.artifacts_bucket_prefix, access_logs).bucket,
        cicd_bucket=bucket("CicdBucket", config.cicd_bucket_prefix, access_logs).bucket,
    )
    catalog = RawReviewsCatalog(
        scope,
        "RawReviewsCatalog",
        RawReviewsCatalogProps(
            database_name=config.glue_database_name,
            table_name=config.raw_reviews_table_name,
            data_bucket=storage.data_bucket,
            raw_prefix=config.raw_reviews_prefix,
            encryption_key=key,
        ),
    )
    workgroup = AthenaWorkgroup(
        scope,
        "AthenaWorkgroup",
        AthenaWorkgroupProps(
            name=config.athena_workgroup_name,
            results_bucket=storage.artifacts_bucket,
            results_prefix=config.athena_results_prefix,
            encryption_key=key,
        ),
    )
    return ProjectData(storage, access_logs.bucket, catalog, workgroup)


class DataStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data = add_project_data(self, config, settings)
        self.key = data.storage.key
        self.catalog = data.catalog
        self.workgroup = data.workgroup
        outputs = {
            "KmsKeyArn": self.key.key_arn,
            "DataBucketName": data.storage.data_bucket.bucket_name,
            "ArtifactsBucketName": data.storage.artifacts_bucket.bucket_name,
            "AccessLogsBucketName": data.access_logs_bucket.bucket_name,
            "CicdBucketName": data.storage.cicd_bucket.bucket_name,
            "RawReviewsUri": f"s3://{data.storage.data_bucket.bucket_name}/{config.raw_reviews_prefix}/",
            "GlueDatabaseName": self.catalog.database_name,
            "RawReviewsTableName": self.catalog.table_name,
            "CrawlerName": self.catalog.crawler_name,
            "AthenaWorkgroupName": self.workgroup.name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
