"""The Glue database, the raw-reviews table and the crawler that keeps its partitions current."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.grants import add_statements
from infra.nag import acknowledge, nag_spelling
from model_build.steps import features


def glue_column_name(raw_column: str) -> str:
    """Glue and Athena want lowercase names without spaces: ``Clothing ID`` -> ``clothing_id``."""
    return re.sub(r"[^a-z0-9]+", "_", raw_column.lower()).strip("_")


@dataclass(frozen=True)
class RawReviewsCatalogProps:
    database_name: str
    table_name: str
    data_bucket: s3.IBucket
    raw_prefix: str
    encryption_key: kms.IKey


class RawReviewsCatalog(Construct):
    """Catalogs the raw review CSVs under the config's table name.

    The table is declared here (its columns are ``features.RAW_COLUMNS``) rather than left to the crawler,
    because a crawler names tables after S3 folders and would call it ``raw``; the crawler then crawls this
    table (a catalog target), adding partitions and logging schema changes instead of renaming anything.
    """

    def __init__(self, scope: Construct, construct_id: str, props: RawReviewsCatalogProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.database_name = props.database_name
        self.table_name = props.table_name
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=props.database_name, description="Raw reviews and the Feature Store offline store tables"
            ),
        )
        self.table = glue.CfnTable(
            self,
            "RawReviewsTable",
            catalog_id=stack.account,
            database_name=props.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=props.table_name,
                description="The raw review CSVs, as uploaded",
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "csv", "skip.header.line.count": "1"},
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=f"s3://{props.data_bucket.bucket_name}/{props.raw_prefix}/",
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.serde2.OpenCSVSerde",
                        parameters={"separatorChar": ",", "quoteChar": '"', "escapeChar": "\\"},
                    ),
                    # OpenCSVSerde reads every column as a string; typed views belong in queries.
                    columns=[
                        glue.CfnTable.ColumnProperty(
                            name=glue_column_name(column), type="string", comment=column
                        )
                        for column in features.RAW_COLUMNS
                    ],
                ),
            ),
        )
        self.table.add_resource_dependency(self.database)

        security_configuration = glue.CfnSecurityConfiguration(
            self,
            "SecurityConfiguration",
            name=f"{props.database_name}-crawler",
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=props.encryption_key.key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=props.encryption_key.key_arn
                ),
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(
                        s3_encryption_mode="SSE-KMS", kms_key_arn=props.encryption_key.key_arn
                    )
                ],
            ),
        )
        self.crawler_role = self._crawler_role(props)
        self.crawler_name = f"{props.database_name}-raw-reviews"
        self.crawler = glue.CfnCrawler(
            self,
            "Crawler",
            name=self.crawler_name,
            description=f"Adds partitions of s3://<data bucket>/{props.raw_prefix}/ to {props.table_name}",
            role=self.crawler_role.role_arn,
            database_name=props.database_name,
            targets=glue.CfnCrawler.TargetsProperty(
                catalog_targets=[
                    glue.CfnCrawler.CatalogTargetProperty(
                        database_name=props.database_name, tables=[props.table_name]
                    )
                ]
            ),
            # A crawler over a catalog table may not delete it; schema changes are logged, not applied, so the
            # columns stay those of features.RAW_COLUMNS.
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="LOG", delete_behavior="LOG"
            ),
            configuration=json.dumps(
                {"Version": 1.0, "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}}}
            ),
            crawler_security_configuration=security_configuration.name,
        )
        self.crawler.add_resource_dependency(self.table)
        self.crawler.add_resource_dependency(security_configuration)
        # Glue checks the role's permissions when the crawler is created: wait for its policy too.
        self.crawler.node.add_dependency(self.crawler_role.node.find_child("DefaultPolicy"))

    def grant_table_upkeep(self, grantee: iam.IGrantable, table_name: str) -> list[iam.PolicyStatement]:
        """Read the database and create or update one table of it, ``table_name`` (the Feature Store offline
        store's, which Feature Store registers as the feature group's role)."""
        stack = Stack.of(self)
        return add_statements(
            grantee,
            iam.PolicyStatement(
                actions=["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
                    stack.format_arn(
                        service="glue", resource="table", resource_name=f"{self.database_name}/{table_name}"
                    ),
                ],
            ),
        )

    def _crawler_role(self, props: RawReviewsCatalogProps) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "CrawlerRole",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description="Lets the raw-reviews crawler read the raw prefix and update its table",
        )
        catalog = stack.format_arn(service="glue", resource="catalog")
        database = stack.format_arn(service="glue", resource="database", resource_name=props.database_name)
        table = stack.format_arn(
            service="glue", resource="table", resource_name=f"{props.database_name}/{props.table_name}"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                    "glue:BatchUpdatePartition",
                ],
                resources=[catalog, database, table],
            )
        )
        # AWS requires "*": glue:GetSecurityConfiguration has no resource-level permissions (a security
        # configuration has no ARN); the crawler reads its own.
        role.add_to_policy(iam.PolicyStatement(actions=["glue:GetSecurityConfiguration"], resources=["*"]))
        props.data_bucket.grant_read(role, f"{props.raw_prefix}/*")
        props.encryption_key.grant_decrypt(role)
        log_groups = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws-glue/crawlers*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:AssociateKmsKey",
                ],
                resources=[log_groups, f"{log_groups}:log-stream:*"],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Read-only S3 actions (CDK's grant_read spells them with suffix wildcards) on the objects under "
            "the raw-reviews prefix only, and the crawler log groups, which Glue names itself "
            "(/aws-glue/crawlers...); glue:GetSecurityConfiguration on '*', the only resource AWS authorizes it on.",
            [
                "Action::s3:GetObject*",
                "Action::s3:GetBucket*",
                "Action::s3:List*",
                "Resource::" + nag_spelling(self, props.data_bucket.arn_for_objects(f"{props.raw_prefix}/*")),
                "Resource::" + nag_spelling(self, log_groups),
                "Resource::" + nag_spelling(self, f"{log_groups}:log-stream:*"),
                "Resource::*",
            ],
        )
        return role
