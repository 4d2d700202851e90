"""The feature group is the shared schema of model_build/steps/features.py, stored where the config says."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from infra.constructs.raw_reviews_catalog import RawReviewsCatalog, RawReviewsCatalogProps
from infra.settings import InfraSettings
from infra.stacks.feature_store_stack import FeatureStoreStack
from model_build.config import load_config
from model_build.steps import features
from tests.infra.conftest import SynthesizedApp, render


def test_feature_group_is_the_shared_schema(default_app: SynthesizedApp) -> None:
    config = default_app.config
    default_app.template("feature_store").has_resource_properties(
        "AWS::SageMaker::FeatureGroup",
        {
            "FeatureGroupName": config.feature_group_name,
            "RecordIdentifierFeatureName": features.RECORD_IDENTIFIER,
            "EventTimeFeatureName": features.EVENT_TIME,
            "FeatureDefinitions": [definition.as_cfn() for definition in features.FEATURE_DEFINITIONS],
        },
    )


def test_offline_store_in_the_data_bucket_encrypted_and_cataloged(default_app: SynthesizedApp) -> None:
    config = default_app.config
    template = default_app.template("feature_store")
    (group,) = template.find_resources("AWS::SageMaker::FeatureGroup").values()
    offline = group["Properties"]["OfflineStoreConfig"]
    assert offline["S3StorageConfig"]["S3Uri"] == {
        "Fn::Join": [
            "",
            [
                "s3://",
                {
                    "Fn::Join": [
                        "-",
                        [config.data_bucket_prefix, {"Ref": "AWS::AccountId"}, {"Ref": "AWS::Region"}],
                    ]
                },
                f"/{config.feature_store_prefix}",
            ],
        ]
    }
    assert "KmsKeyId" in offline["S3StorageConfig"]
    assert offline["DataCatalogConfig"] == {
        "Catalog": "AwsDataCatalog",
        "Database": config.glue_database_name,
        "TableName": config.feature_group_table_name,
    }
    assert config.feature_group_table_name == config.feature_group_name.replace("-", "_")
    assert "OnlineStoreConfig" not in group["Properties"]
    assert group.get("DeletionPolicy", "Delete") == "Delete"


def _actions(statement: dict) -> tuple[str, ...]:
    actions = statement["Action"]
    return tuple(sorted([actions] if isinstance(actions, str) else actions))


def test_the_offline_store_role_may_write_only_its_prefix_and_table(default_app: SynthesizedApp) -> None:
    config = default_app.config
    data_bucket = (
        f"arn:${{AWS::Partition}}:s3:::{config.data_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    (policy,) = default_app.template("feature_store").find_resources("AWS::IAM::Policy").values()
    statements = render(policy["Properties"]["PolicyDocument"]["Statement"])
    by_action = {_actions(statement): statement["Resource"] for statement in statements}
    assert by_action[("s3:GetObject", "s3:PutObject", "s3:PutObjectAcl")] == (
        f"{data_bucket}/{config.feature_store_prefix}/*"
    )
    assert by_action[("s3:GetBucketAcl",)] == data_bucket
    table = config.feature_group_table_name
    assert by_action[("glue:CreateTable", "glue:GetDatabase", "glue:GetTable", "glue:UpdateTable")] == [
        "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog",
        f"arn:${{AWS::Partition}}:glue:${{AWS::Region}}:${{AWS::AccountId}}:database/{config.glue_database_name}",
        f"arn:${{AWS::Partition}}:glue:${{AWS::Region}}:${{AWS::AccountId}}:table/{config.glue_database_name}/{table}",
    ]


def test_online_store_is_optional_encrypted_and_kept(all_options_app: SynthesizedApp) -> None:
    (group,) = (
        all_options_app.template("feature_store").find_resources("AWS::SageMaker::FeatureGroup").values()
    )
    online = group["Properties"]["OnlineStoreConfig"]
    assert online["EnableOnlineStore"] is True
    assert "KmsKeyId" in online["SecurityConfig"]
    # all_options sets retainData=false: nothing is kept then.
    assert group["DeletionPolicy"] == "Delete"


def test_online_store_is_retained_when_data_is() -> None:
    """Online records exist nowhere else, so with retainData (the default) the group is kept."""
    app = App()
    config = load_config()
    data = Stack(app, "Data")
    key = kms.Key(data, "Key")
    catalog = RawReviewsCatalog(
        data,
        "Catalog",
        RawReviewsCatalogProps(
            database_name=config.glue_database_name,
            table_name=config.raw_reviews_table_name,
            data_bucket=s3.Bucket(data, "Bucket"),
            raw_prefix=config.raw_reviews_prefix,
            encryption_key=key,
        ),
    )
    stack = FeatureStoreStack(
        app,
        "FeatureStore",
        config=config,
        settings=InfraSettings(online_store=True),
        encryption_key=key,
        catalog=catalog,
    )
    Template.from_stack(stack).has_resource("AWS::SageMaker::FeatureGroup", {"DeletionPolicy": "Retain"})
