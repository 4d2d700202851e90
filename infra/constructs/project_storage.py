"""The project's key and buckets as every part of the app takes them, and the grants on what they hold.

Each grant names the objects by the layout that writes them (:mod:`model_build.storage_layout`, the
config's prefixes), so a role gets the prefixes of its work and no bucket-wide access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.grants import add_statements
from infra.constructs.secure_bucket import import_project_bucket
from model_build.config import ProjectConfig
from model_build.storage_layout import PipelineStorage, StepWrites, listing

# What a job needs to put an object, multipart uploads included (large model archives are uploaded in parts).
PUT_OBJECT_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")


def _sid(name: str) -> str:
    """A statement id from a step name (IAM allows only letters and digits)."""
    return "".join(character for character in name if character.isalnum())


@dataclass(frozen=True)
class ProjectStorage:
    """The project's key and the three buckets its data lives in, as every part of the app takes them."""

    key: kms.IKey
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    cicd_bucket: s3.IBucket

    @classmethod
    def imported(cls, scope: Construct, config: ProjectConfig, key: kms.IKey) -> ProjectStorage:
        """The data stack's buckets seen from another stack, by their derived names (no cross-stack exports)."""
        return cls(
            key=key,
            data_bucket=import_project_bucket(scope, "DataBucket", config.data_bucket_prefix, key),
            artifacts_bucket=import_project_bucket(
                scope, "ArtifactsBucket", config.artifacts_bucket_prefix, key
            ),
            cicd_bucket=import_project_bucket(scope, "CicdBucket", config.cicd_bucket_prefix, key),
        )

    def grant_key_use(self, grantee: iam.IGrantable) -> list[iam.PolicyStatement]:
        """Decrypt what is read and encrypt what is written (a data key per object, S3 bucket keys) with the
        project key: no ``ReEncrypt*`` or ``GenerateDataKey*`` wildcards as CDK's ``grant_encrypt_decrypt``."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="UseProjectKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self.key.key_arn],
            ),
        )

    def grant_pipeline_read(
        self, grantee: iam.IGrantable, layout: PipelineStorage, *, reads_input: bool
    ) -> list[iam.PolicyStatement]:
        """Read the pipeline's artifacts (code, earlier steps' outputs) and, with ``reads_input``, the raw
        reviews: nothing here lets a role write or delete in either bucket."""
        statements = []
        buckets = [self.artifacts_bucket]
        if reads_input:
            buckets.insert(0, self.data_bucket)
            statements += [
                iam.PolicyStatement(
                    sid="ListReviewData",
                    actions=["s3:ListBucket"],
                    resources=[self.data_bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": list(listing(layout.data_prefixes))}},
                ),
                iam.PolicyStatement(
                    sid="ReadReviewData",
                    actions=["s3:GetObject"],
                    resources=[self.data_bucket.arn_for_objects(key) for key in layout.data_reads],
                ),
            ]
        statements += [
            iam.PolicyStatement(
                sid="ListPipelineArtifacts",
                actions=["s3:ListBucket"],
                resources=[self.artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": list(listing(layout.artifact_prefixes))}},
            ),
            iam.PolicyStatement(
                sid="ReadPipelineArtifacts",
                actions=["s3:GetObject"],
                resources=[self.artifacts_bucket.arn_for_objects(key) for key in layout.artifact_reads],
            ),
            iam.PolicyStatement(
                sid="LocateBuckets",
                actions=["s3:GetBucketLocation"],
                resources=[bucket.bucket_arn for bucket in buckets],
            ),
        ]
        return add_statements(grantee, *statements)

    def grant_step_prefix_write(
        self, grantee: iam.IGrantable, writes: StepWrites
    ) -> list[iam.PolicyStatement]:
        """Create objects only under one job step's own prefixes in the artifacts bucket; delete only in its
        checkpoint folder (training), which SageMaker keeps in sync with the container's."""
        statements = [
            iam.PolicyStatement(
                sid=f"Write{_sid(writes.step)}",
                actions=list(PUT_OBJECT_ACTIONS),
                resources=[
                    self.artifacts_bucket.arn_for_objects(key)
                    for key in (*writes.outputs, *writes.checkpoints)
                ],
            )
        ]
        if writes.checkpoints:
            statements.append(
                iam.PolicyStatement(
                    sid=f"Sync{_sid(writes.step)}Checkpoints",
                    actions=["s3:DeleteObject"],
                    resources=[self.artifacts_bucket.arn_for_objects(key) for key in writes.checkpoints],
                )
            )
        return add_statements(grantee, *statements)

    def grant_input_listing(
        self, grantee: iam.IGrantable, prefixes: tuple[str, ...]
    ) -> list[iam.PolicyStatement]:
        """List the pipeline's input under ``prefixes`` of the data bucket (``PipelineStorage.data_prefixes``),
        to fingerprint it: no object is read or written."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="ListPipelineInput",
                actions=["s3:ListBucket"],
                resources=[self.data_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": list(listing(prefixes))}},
            ),
        )

    def grant_code_upload(self, grantee: iam.IGrantable, code_prefix: str) -> str:
        """Read and write the step code under ``code_prefix`` of the artifacts bucket (CDK's ``grant_read_write``,
        its key included); returns the objects' ARN pattern, for the caller's acknowledgment."""
        objects = f"{code_prefix}/*"
        self.artifacts_bucket.grant_read_write(grantee, objects)
        return self.artifacts_bucket.arn_for_objects(objects)

    def grant_offline_store_write(self, grantee: iam.IGrantable, prefix: str) -> list[iam.PolicyStatement]:
        """What Feature Store needs, as the feature group's role, to write the offline store under ``prefix`` of
        the data bucket: objects under keys it generates, their ACL, and the bucket's ACL (it checks it)."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:PutObjectAcl", "s3:GetObject"],
                resources=[self.data_bucket.arn_for_objects(f"{prefix}/*")],
            ),
            iam.PolicyStatement(actions=["s3:GetBucketAcl"], resources=[self.data_bucket.bucket_arn]),
        )

    def grant_model_read(self, grantee: iam.IGrantable, prefixes: Sequence[str]) -> list[iam.PolicyStatement]:
        """Read the model archives the pipeline registers under ``prefixes`` (``storage_layout.served_prefixes``:
        the training jobs' and the evaluation step's packages): not the splits and reports beside them."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="ReadModelArtifacts",
                actions=["s3:GetObject"],
                resources=[self.artifacts_bucket.arn_for_objects(f"{prefix}/*") for prefix in prefixes],
            ),
        )

    def grant_capture_write(self, grantee: iam.IGrantable, capture_key: str) -> list[iam.PolicyStatement]:
        """Write an endpoint's data capture files (SageMaker names them) under ``capture_key``."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="WriteCaptures",
                actions=["s3:PutObject"],
                resources=[self.data_bucket.arn_for_objects(f"{capture_key}/*")],
            ),
        )

    def grant_drift_monitor_data(
        self, grantee: iam.IGrantable, *, baselines_prefix: str, captures_prefix: str, reports_prefix: str
    ) -> list[iam.PolicyStatement]:
        """Read the baselines (artifacts bucket) and the endpoints' captures (data bucket), list both prefixes,
        and write reports under ``reports_prefix``: what a drift monitoring job does, nothing more."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="ReadBaselines",
                actions=["s3:GetObject"],
                resources=[self.artifacts_bucket.arn_for_objects(f"{baselines_prefix}/*")],
            ),
            iam.PolicyStatement(
                sid="ReadCaptures",
                actions=["s3:GetObject"],
                resources=[self.data_bucket.arn_for_objects(f"{captures_prefix}/*")],
            ),
            iam.PolicyStatement(
                sid="ListBaselinesAndCaptures",
                actions=["s3:ListBucket"],
                resources=[self.artifacts_bucket.bucket_arn, self.data_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{baselines_prefix}/*", f"{captures_prefix}/*"]}},
            ),
            iam.PolicyStatement(
                sid="WriteReports",
                actions=["s3:PutObject"],
                resources=[self.artifacts_bucket.arn_for_objects(f"{reports_prefix}/*")],
            ),
        )

    def grant_key_describe(self, grantee: iam.IGrantable) -> list[iam.PolicyStatement]:
        """Describe the project key (what SageMaker checks before it creates a grant for a resource)."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="DescribeProjectKey", actions=["kms:DescribeKey"], resources=[self.key.key_arn]
            ),
        )

    def grant_key_to_aws_resources(
        self, grantee: iam.IGrantable, *, actions: tuple[str, ...] = ("kms:CreateGrant",)
    ) -> list[iam.PolicyStatement]:
        """Let SageMaker create a grant on the project key for a resource it creates with the grantee's
        permission (an endpoint's or a job's encrypted volume and outputs): only grants for AWS resources."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="GrantProjectKeyToSageMaker",
                actions=list(actions),
                resources=[self.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        )
