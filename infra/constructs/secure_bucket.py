"""An S3 bucket with the settings every bucket of the template needs, so none can be forgotten."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, Fn, RemovalPolicy, Token
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from model_build.config import BUCKET_NAME_SUFFIX_LENGTH as _SUFFIX_LENGTH
from model_build.config import S3_BUCKET_NAME_MAX_LENGTH as _MAX_BUCKET_NAME


def project_bucket_name(name_prefix: str) -> str:
    """``<prefix>-<account>-<region>``: unique across AWS, and known to every stack without a reference."""
    return Fn.join("-", [name_prefix, Aws.ACCOUNT_ID, Aws.REGION])


def import_project_bucket(scope: Construct, construct_id: str, name_prefix: str, key: kms.IKey) -> s3.IBucket:
    """A bucket of the data stack, seen from another stack by its derived name.

    Importing by name (rather than passing the ``Bucket`` object) keeps the other stacks' IAM policies free
    of cross-stack references, so their resources read ``arn:...:s3:::<prefix>-<account>-<region>/*``.
    """
    return s3.Bucket.from_bucket_attributes(
        scope, construct_id, bucket_name=project_bucket_name(name_prefix), encryption_key=key
    )


@dataclass(frozen=True)
class SecureBucketProps:
    name_prefix: str
    """The config's ``*_bucket_prefix``; the bucket is named ``<prefix>-<account>-<region>``."""
    encryption_key: kms.IKey | None
    """SSE-KMS with this key; None only for the access-logs bucket, where S3 accepts SSE-S3 only."""
    server_access_logs_bucket: s3.IBucket | None
    """Where S3 writes this bucket's access logs; None only for the access-logs bucket itself."""
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    noncurrent_version_retention_days: int = 90


class SecureBucket(Construct):
    """Versioned, encrypted, private, TLS-only, access-logged, with old object versions expiring."""

    def __init__(self, scope: Construct, construct_id: str, props: SecureBucketProps) -> None:
        super().__init__(scope, construct_id)
        longest_name = len(props.name_prefix) + _SUFFIX_LENGTH
        # A prefix that holds CloudFormation parameters is checked by their patterns when it is deployed.
        if longest_name > _MAX_BUCKET_NAME and not Token.is_unresolved(props.name_prefix):
            raise ValueError(
                f"bucket name prefix {props.name_prefix!r} is too long: with '-<account>-<region>' the name "
                f"can reach {longest_name} characters, S3 allows {_MAX_BUCKET_NAME}; "
                "shorten the project name or environment"
            )
        destroy = props.removal_policy == RemovalPolicy.DESTROY
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=project_bucket_name(props.name_prefix),
            versioned=True,
            encryption=s3.BucketEncryption.KMS if props.encryption_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=props.encryption_key,
            bucket_key_enabled=props.encryption_key is not None,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            server_access_logs_bucket=props.server_access_logs_bucket,
            server_access_logs_prefix=f"{props.name_prefix}/" if props.server_access_logs_bucket else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(props.noncurrent_version_retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=props.removal_policy,
            # A versioned bucket with objects cannot be deleted; when the data is not to be kept, empty it first.
            auto_delete_objects=destroy,
        )
