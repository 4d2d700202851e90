"""The review feature group, built from the shared schema in ``model_build/steps/features.py``."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.constructs.grants import add_statements
from infra.constructs.project_storage import ProjectStorage
from infra.constructs.raw_reviews_catalog import RawReviewsCatalog
from infra.nag import acknowledge, nag_spelling
from model_build.steps import features


@dataclass(frozen=True)
class FeatureGroupProps:
    feature_group_name: str
    offline_store_table_name: str
    storage: ProjectStorage
    """The offline store is in its data bucket, encrypted with its key."""
    offline_store_prefix: str
    catalog: RawReviewsCatalog
    """The Glue database the offline store's table is registered in."""
    online_store: bool = False
    removal_policy: RemovalPolicy = RemovalPolicy.DESTROY
    """Deleting the group leaves its offline store files in S3; only its online records would be lost."""


class ReviewFeatureGroup(Construct):
    """An ``AWS::SageMaker::FeatureGroup`` with an encrypted offline store registered in the Glue catalog."""

    def __init__(self, scope: Construct, construct_id: str, props: FeatureGroupProps) -> None:
        super().__init__(scope, construct_id)
        self.feature_group_name = props.feature_group_name
        self.offline_store_table_name = props.offline_store_table_name
        self.offline_store_uri = f"s3://{props.storage.data_bucket.bucket_name}/{props.offline_store_prefix}"
        self.role = iam.Role(
            self,
            "OfflineStoreRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Lets Feature Store write the offline store and register its Glue table",
        )
        offline_store, _ = props.storage.grant_offline_store_write(self.role, props.offline_store_prefix)
        props.catalog.grant_table_upkeep(self.role, self.offline_store_table_name)
        props.storage.key.grant_encrypt_decrypt(self.role)
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            "Feature Store writes objects under keys it generates below the offline-store prefix, so the "
            "object resource ends in '/*'; the KMS actions are CDK's encrypt/decrypt grant on this project's "
            "key only, spelled with suffix wildcards (kms:GenerateDataKey*, kms:ReEncrypt*).",
            [
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                *("Resource::" + nag_spelling(self, resource) for resource in offline_store.resources),
            ],
        )

        self.feature_group = sagemaker.CfnFeatureGroup(
            self,
            "FeatureGroup",
            feature_group_name=props.feature_group_name,
            description="Tokenized reviews with their sentiment label and split",
            record_identifier_feature_name=features.RECORD_IDENTIFIER,
            event_time_feature_name=features.EVENT_TIME,
            feature_definitions=[
                sagemaker.CfnFeatureGroup.FeatureDefinitionProperty(
                    feature_name=definition.as_cfn()["FeatureName"],
                    feature_type=definition.as_cfn()["FeatureType"],
                )
                for definition in features.FEATURE_DEFINITIONS
            ],
            offline_store_config={
                "S3StorageConfig": {
                    "S3Uri": self.offline_store_uri,
                    "KmsKeyId": props.storage.key.key_arn,
                },
                "DataCatalogConfig": {
                    "Catalog": "AwsDataCatalog",
                    "Database": props.catalog.database_name,
                    "TableName": self.offline_store_table_name,
                },
                "DisableGlueTableCreation": False,
            },
            online_store_config=(
                {"EnableOnlineStore": True, "SecurityConfig": {"KmsKeyId": props.storage.key.key_arn}}
                if props.online_store
                else None
            ),
            role_arn=self.role.role_arn,
        )
        self.feature_group.apply_removal_policy(props.removal_policy)
        # Feature Store checks the role's permissions when the group is created: wait for its policy too.
        self.feature_group.node.add_dependency(self.role.node.find_child("DefaultPolicy"))

    @property
    def arn(self) -> str:
        """Built from the group's name, so another stack's policy can name it without a cross-stack export."""
        return Stack.of(self).format_arn(
            service="sagemaker", resource="feature-group", resource_name=self.feature_group_name
        )

    def grant_put_record(self, grantee: iam.IGrantable) -> list[iam.PolicyStatement]:
        """Put records into the group (``FeatureStoreIngestor`` in the preprocessing step): PutRecord only; the
        online store's key is the project key, which the grantee gets from the storage's ``grant_key_use``."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="PutFeatureRecords", actions=["sagemaker:PutRecord"], resources=[self.arn]
            ),
        )
