"""The data stack: key, buckets, Glue catalog and Athena workgroup."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from model_build.steps import features
from tests.infra.conftest import SynthesizedApp


def _bucket_named(app: SynthesizedApp, prefix: str) -> tuple[str, dict[str, Any]]:
    """The data stack's bucket whose name is ``<prefix>-<account>-<region>``."""
    expected = {"Fn::Join": ["-", [prefix, {"Ref": "AWS::AccountId"}, {"Ref": "AWS::Region"}]]}
    buckets = app.template("data").find_resources("AWS::S3::Bucket")
    matches = [(lid, b) for lid, b in buckets.items() if b["Properties"].get("BucketName") == expected]
    assert len(matches) == 1, f"no single bucket named {prefix}-<account>-<region> in {list(buckets)}"
    return matches[0]


def test_the_key_rotates(default_app: SynthesizedApp) -> None:
    default_app.template("data").has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_four_buckets_versioned_private_with_old_versions_expiring(default_app: SynthesizedApp) -> None:
    config = default_app.config
    data = default_app.template("data")
    data.resource_count_is("AWS::S3::Bucket", 4)
    for prefix in (
        config.data_bucket_prefix,
        config.artifacts_bucket_prefix,
        config.cicd_bucket_prefix,
        config.access_logs_bucket_prefix,
    ):
        _, bucket = _bucket_named(default_app, prefix)
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (rule,) = properties["LifecycleConfiguration"]["Rules"]
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
        assert bucket["DeletionPolicy"] == "Retain"


def test_data_artifacts_and_cicd_use_the_key_and_log_to_the_logs_bucket(default_app: SynthesizedApp) -> None:
    config = default_app.config
    key_id = next(iter(default_app.template("data").find_resources("AWS::KMS::Key")))
    logs_id, _ = _bucket_named(default_app, config.access_logs_bucket_prefix)
    for prefix in (config.data_bucket_prefix, config.artifacts_bucket_prefix, config.cicd_bucket_prefix):
        _, bucket = _bucket_named(default_app, prefix)
        (encryption,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
        }
        assert bucket["Properties"]["LoggingConfiguration"] == {
            "DestinationBucketName": {"Ref": logs_id},
            "LogFilePrefix": f"{prefix}/",
        }


def test_the_logs_bucket_uses_s3_managed_keys_because_log_delivery_requires_it(
    default_app: SynthesizedApp,
) -> None:
    _, logs = _bucket_named(default_app, default_app.config.access_logs_bucket_prefix)
    (encryption,) = logs["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_every_bucket_refuses_plain_http(default_app: SynthesizedApp) -> None:
    policies = default_app.template("data").find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        assert {
            "Effect": "Deny",
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Principal": {"AWS": "*"},
        }.items() <= next(
            statement
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
        ).items()


def test_retain_data_false_destroys_and_empties_buckets(all_options_app: SynthesizedApp) -> None:
    data = all_options_app.template("data")
    for bucket in data.find_resources("AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Delete"
    data.resource_count_is("Custom::S3AutoDeleteObjects", 4)
    data.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Delete"})


def test_glue_database_and_raw_reviews_table(default_app: SynthesizedApp) -> None:
    config = default_app.config
    data = default_app.template("data")
    data.has_resource_properties(
        "AWS::Glue::Database", {"DatabaseInput": {"Name": config.glue_database_name}}
    )
    (table,) = data.find_resources("AWS::Glue::Table").values()
    table_input = table["Properties"]["TableInput"]
    assert table["Properties"]["DatabaseName"] == config.glue_database_name
    assert table_input["Name"] == config.raw_reviews_table_name
    columns = table_input["StorageDescriptor"]["Columns"]
    assert [column["Comment"] for column in columns] == list(features.RAW_COLUMNS)
    assert columns[0]["Name"] == "clothing_id"
    location = table_input["StorageDescriptor"]["Location"]
    assert location["Fn::Join"][1][-1] == f"/{config.raw_reviews_prefix}/"


def test_the_crawler_crawls_the_raw_reviews_table_encrypted(default_app: SynthesizedApp) -> None:
    config = default_app.config
    data = default_app.template("data")
    data.has_resource_properties(
        "AWS::Glue::Crawler",
        {
            "DatabaseName": config.glue_database_name,
            "Targets": {
                "CatalogTargets": [
                    {"DatabaseName": config.glue_database_name, "Tables": [config.raw_reviews_table_name]}
                ]
            },
            "CrawlerSecurityConfiguration": Match.any_value(),
        },
    )
    data.has_resource_properties(
        "AWS::Glue::SecurityConfiguration",
        {
            "EncryptionConfiguration": {
                "CloudWatchEncryption": {
                    "CloudWatchEncryptionMode": "SSE-KMS",
                    "KmsKeyArn": Match.any_value(),
                },
                "JobBookmarksEncryption": Match.any_value(),
                "S3Encryptions": Match.any_value(),
            }
        },
    )


def test_athena_workgroup_enforces_encrypted_results(default_app: SynthesizedApp) -> None:
    config = default_app.config
    default_app.template("data").has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "Name": config.athena_workgroup_name,
            "WorkGroupConfiguration": {
                "EnforceWorkGroupConfiguration": True,
                "ResultConfiguration": {
                    "EncryptionConfiguration": {"EncryptionOption": "SSE_KMS", "KmsKey": Match.any_value()},
                    "OutputLocation": Match.object_like(
                        {"Fn::Join": ["", Match.array_with([f"/{config.athena_results_prefix}/"])]}
                    ),
                },
            },
        },
    )
