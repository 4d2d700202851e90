"""The project's customer-managed KMS key: buckets, Feature Store, CodeBuild and Glue logs use it."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


@dataclass(frozen=True)
class EncryptionKeyProps:
    alias: str
    """Without the ``alias/`` prefix: the config's resource stem."""
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    """Keep it whenever the data it encrypts is kept: without the key that data cannot be read."""


class EncryptionKey(Construct):
    """A rotating key that CloudWatch Logs may also use, for the Glue crawler's encrypted logs."""

    def __init__(self, scope: Construct, construct_id: str, props: EncryptionKeyProps) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/{props.alias}",
            description=f"Encrypts the data, artifacts and logs of {props.alias}",
            enable_key_rotation=True,
            removal_policy=props.removal_policy,
        )
        # Log groups encrypted with this key (Glue security configuration) are written by the Logs service,
        # which needs its own statement in the key policy; the condition limits it to this account's logs.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],  # In a key policy "*" means this key; AWS requires it there.
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:*"
                    }
                },
            )
        )
