"""Feature Store: the review feature group, its offline store in the data bucket."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.feature_group import FeatureGroupProps, ReviewFeatureGroup
from infra.constructs.project_storage import ProjectStorage
from infra.constructs.raw_reviews_catalog import RawReviewsCatalog
from infra.settings import InfraSettings
from model_build.config import ProjectConfig


def add_feature_group(
    scope: Construct,
    config: ProjectConfig,
    settings: InfraSettings,
    storage: ProjectStorage,
    catalog: RawReviewsCatalog,
) -> ReviewFeatureGroup:
    """Adds the review feature group to ``scope``: the feature store stack, or a project."""
    # The offline store's files stay in the bucket whatever happens to the group; only the online store
    # holds records nowhere else, so the group is kept when it has one and data is to be kept.
    keep = settings.retain_data and settings.online_store
    return ReviewFeatureGroup(
        scope,
        "ReviewFeatureGroup",
        FeatureGroupProps(
            feature_group_name=config.feature_group_name,
            offline_store_table_name=config.feature_group_table_name,
            storage=storage,
            offline_store_prefix=config.feature_store_prefix,
            catalog=catalog,
            online_store=settings.online_store,
            removal_policy=RemovalPolicy.RETAIN if keep else RemovalPolicy.DESTROY,
        ),
    )


class FeatureStoreStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        encryption_key: kms.IKey,
        catalog: RawReviewsCatalog,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        storage = ProjectStorage.imported(self, config, encryption_key)
        self.feature_group = add_feature_group(self, config, settings, storage, catalog)
        CfnOutput(self, "FeatureGroupName", value=self.feature_group.feature_group_name)
        CfnOutput(self, "FeatureGroupArn", value=self.feature_group.arn)
        CfnOutput(self, "OfflineStoreUri", value=self.feature_group.offline_store_uri)
        CfnOutput(self, "OfflineStoreTableName", value=self.feature_group.offline_store_table_name)
