"""The template a SageMaker project is created from: what ``cdk deploy --all`` deploys, in one template.

Studio (or ``aws sagemaker create-project``) provisions it through Service Catalog with two parameters,
``SageMakerProjectName`` and ``SageMakerProjectId``. The config is built from them
(:meth:`ProjectConfig.for_sagemaker_project`), so every name is the one the six stacks would get for that
project name with the project id as the environment, and two projects never share one.

The six stacks are separate CloudFormation stacks, which a Service Catalog product cannot be, so the
constructs they compose are composed again here, in the same order and with the same props;
``tests/infra/test_project_template.py`` checks that the product holds the same resources as the stacks.

Deleting the project deletes this stack. What holds data is retained whatever the context says (``retainData``
would need a Lambda asset to empty buckets, and a product's assets need a bucket of their own): the KMS key,
the three buckets, the model package group, the CodeCommit repository and, with an online store, the feature
group. Everything else (pipelines, build projects, roles, rules, catalog, workgroup) is deleted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Duration, Fn, RemovalPolicy, Stack, Tags
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_servicecatalog as servicecatalog
from constructs import Construct

from infra.constructs.approval_rule import ApprovalRuleProps, ModelApprovedRule
from infra.constructs.athena_workgroup import AthenaWorkgroup, AthenaWorkgroupProps
from infra.constructs.build_pipeline import BuildPipeline, BuildPipelineProps
from infra.constructs.deploy_pipeline import DeployPipeline, DeployPipelineProps, DeployStage
from infra.constructs.encryption_key import EncryptionKey, EncryptionKeyProps
from infra.constructs.endpoint import EndpointExecutionRole, EndpointExecutionRoleProps
from infra.constructs.execution_role import ExecutionRoleProps, SageMakerExecutionRole
from infra.constructs.feature_group import FeatureGroupProps, ReviewFeatureGroup
from infra.constructs.model_monitoring import ModelMonitoring, ModelMonitoringProps
from infra.constructs.model_registry import ModelRegistry, ModelRegistryProps
from infra.constructs.pull_request_checks import PullRequestChecks, PullRequestChecksProps
from infra.constructs.raw_reviews_catalog import RawReviewsCatalog, RawReviewsCatalogProps
from infra.constructs.secure_bucket import SecureBucket, SecureBucketProps
from infra.constructs.source_repository import SourceRepository, SourceRepositoryProps
from infra.nag import acknowledge
from infra.settings import InfraSettings
from model_build.config import (
    SAGEMAKER_PROJECT_ID_PATTERN,
    SAGEMAKER_PROJECT_ID_VARIABLE,
    SAGEMAKER_PROJECT_NAME_MAX_LENGTH,
    SAGEMAKER_PROJECT_NAME_PATTERN,
    ProjectConfig,
)
from model_build.storage_layout import pipeline_storage
from model_deploy.aws.names import endpoint_role_name, endpoint_stack_name
from model_deploy.stage_config import load_stages

PROJECT_NAME_PARAMETER = "SageMakerProjectName"
PROJECT_ID_PARAMETER = "SageMakerProjectId"
PROJECT_TAG_PRIORITY = 200


@dataclasses.dataclass(frozen=True)
class DeployTimeProjectConfig(ProjectConfig):
    """A config whose names hold CloudFormation parameters: only CloudFormation can edit their hyphens.

    The project name has none (``SAGEMAKER_PROJECT_NAME_PATTERN``) and the id one, after its ``p``, so the id
    is spelled ``p_<rest>``; ``Fn::Select`` of ``Fn::Split`` is a form cdk-nag can read, unlike a
    ``Fn::Join`` over a ``Fn::Split``, which would have done any number of hyphens.
    """

    def underscored(self, name: str) -> str:
        project_id = f"p_{Fn.select(1, Fn.split('-', self.environment))}"
        return name.replace(self.environment, project_id).replace("-", "_")


def product_settings(settings: InfraSettings) -> InfraSettings:
    """The context's settings as a project gets them: data retained, one repository per project."""
    return dataclasses.replace(settings, retain_data=True, repository_name=None)


class ProjectProductStack(servicecatalog.ProductStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: InfraSettings,
        region: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = product_settings(settings)
        project_name = CfnParameter(
            self,
            PROJECT_NAME_PARAMETER,
            type="String",
            description="The SageMaker project's name; Studio passes it",
            allowed_pattern=SAGEMAKER_PROJECT_NAME_PATTERN.pattern,
            max_length=SAGEMAKER_PROJECT_NAME_MAX_LENGTH,
            constraint_description=(
                f"3-{SAGEMAKER_PROJECT_NAME_MAX_LENGTH} lowercase letters and digits, starting with a letter: "
                "the name becomes part of IAM, SageMaker and Glue names"
            ),
        )
        project_id = CfnParameter(
            self,
            PROJECT_ID_PARAMETER,
            type="String",
            description="The SageMaker project's id; Studio passes it",
            allowed_pattern=SAGEMAKER_PROJECT_ID_PATTERN.pattern,
            constraint_description="a SageMaker project id: p- and lowercase letters and digits",
        )
        self.config = config = DeployTimeProjectConfig.for_sagemaker_project(
            project_name.value_as_string, project_id.value_as_string, region=region
        )
        removal_policy = RemovalPolicy.RETAIN
        # Above the app's tags (the published stack's project and environment): these are the project's own.
        for key, value in config.tags.items():
            Tags.of(self).add(key, value, priority=PROJECT_TAG_PRIORITY)

        # --- as DataStack
        key = EncryptionKey(self, "EncryptionKey", EncryptionKeyProps(config.prefix, removal_policy)).key

        def bucket(construct_id: str, name_prefix: str, logs: SecureBucket | None) -> SecureBucket:
            return SecureBucket(
                self,
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
        data_bucket = bucket("DataBucket", config.data_bucket_prefix, access_logs).bucket
        artifacts_bucket = bucket("ArtifactsBucket", config.artifacts_bucket_prefix, access_logs).bucket
        cicd_bucket = bucket("CicdBucket", config.cicd_bucket_prefix, access_logs).bucket
        catalog = RawReviewsCatalog(
            self,
            "RawReviewsCatalog",
            RawReviewsCatalogProps(
                database_name=config.glue_database_name,
                table_name=config.raw_reviews_table_name,
                data_bucket=data_bucket,
                raw_prefix=config.raw_reviews_prefix,
                encryption_key=key,
            ),
        )
        acknowledge(
            catalog.crawler,
            "AwsSolutions-GL1",
            "The crawler names its security configuration, which encrypts CloudWatch logs with the project key; "
            "cdk-nag cannot match the two names here because they hold the project id's Fn::Select",
        )
        workgroup = AthenaWorkgroup(
            self,
            "AthenaWorkgroup",
            AthenaWorkgroupProps(
                name=config.athena_workgroup_name,
                results_bucket=artifacts_bucket,
                results_prefix=config.athena_results_prefix,
                encryption_key=key,
            ),
        )

        # --- as FeatureStoreStack
        feature_group = ReviewFeatureGroup(
            self,
            "ReviewFeatureGroup",
            FeatureGroupProps(
                feature_group_name=config.feature_group_name,
                offline_store_table_name=config.feature_group_table_name,
                data_bucket=data_bucket,
                offline_store_prefix=config.feature_store_prefix,
                glue_database_name=config.glue_database_name,
                encryption_key=key,
                online_store=settings.online_store,
                removal_policy=RemovalPolicy.RETAIN if settings.online_store else RemovalPolicy.DESTROY,
            ),
        )

        # --- as RegistryStack
        registry = ModelRegistry(
            self,
            "ModelRegistry",
            ModelRegistryProps(
                model_package_group_name=config.model_package_group_name, removal_policy=removal_policy
            ),
        )
        execution_role = SageMakerExecutionRole(
            self,
            "ExecutionRole",
            ExecutionRoleProps(
                role_name=config.execution_role_name,
                pipeline_name=config.pipeline_name,
                data_bucket=data_bucket,
                artifacts_bucket=artifacts_bucket,
                encryption_key=key,
                feature_group_arn=feature_group.arn,
                model_package_group_arn=registry.arn,
                model_packages_arn=registry.model_packages_arn,
                glue_database_name=config.glue_database_name,
                athena_workgroup_arn=workgroup.arn,
                storage=pipeline_storage(config),
            ),
        ).role

        # --- as BuildPipelineStack
        source = SourceRepository(
            self,
            "SourceRepository",
            SourceRepositoryProps(
                source_type=settings.source_type,
                # Each project gets its own repository; with GitHub, one the project's name names.
                repository_name=config.prefix
                if settings.source_type == "codecommit"
                else config.project_name,
                branch=settings.branch,
                repository_owner=settings.repository_owner,
                code_connection_arn=settings.code_connection_arn,
                removal_policy=removal_policy,
            ),
        )
        build = BuildPipeline(
            self,
            "BuildPipeline",
            BuildPipelineProps(
                pipeline_name=config.build_pipeline_name,
                sagemaker_pipeline_name=config.pipeline_name,
                project_name=config.project_name,
                environment=config.environment,
                source=source,
                execution_role=execution_role,
                data_bucket=data_bucket,
                artifacts_bucket=artifacts_bucket,
                code_prefix=config.pipeline_artifacts_prefix,
                cicd_bucket=cicd_bucket,
                encryption_key=key,
                retrain_schedule=settings.retrain_schedule,
            ),
        )

        # --- as DeployPipelineStack
        stages = []
        for stage, stage_config in load_stages().items():
            role = EndpointExecutionRole(
                self,
                f"{stage.title()}EndpointRole",
                EndpointExecutionRoleProps(
                    role_name=endpoint_role_name(config, stage),
                    endpoint_name=config.endpoint_name(stage),
                    artifacts_bucket=artifacts_bucket,
                    model_artifacts_prefix=config.pipeline_artifacts_prefix,
                    data_bucket=data_bucket,
                    data_capture_key=config.data_capture_key(stage),
                    encryption_key=key,
                ),
            ).role
            stages.append(
                DeployStage(
                    stage=stage,
                    endpoint_name=config.endpoint_name(stage),
                    stack_name=endpoint_stack_name(config, stage),
                    execution_role=role,
                    update_timeout=Duration.seconds(
                        stage_config.deployment.maximum_execution_timeout_seconds
                    ),
                )
            )
        deploy = DeployPipeline(
            self,
            "DeployPipeline",
            DeployPipelineProps(
                pipeline_name=config.deploy_pipeline_name,
                project_name=config.project_name,
                environment=config.environment,
                model_package_group_name=config.model_package_group_name,
                model_package_group_arn=registry.arn,
                model_packages_arn=registry.model_packages_arn,
                source=source,
                cicd_bucket=cicd_bucket,
                artifacts_bucket_name=artifacts_bucket.bucket_name,
                data_bucket=data_bucket,
                encryption_key=key,
                stages=tuple(stages),
            ),
        )
        ModelApprovedRule(
            self,
            "ModelApprovedRule",
            ApprovalRuleProps(
                rule_name=config.approval_rule_name,
                model_package_group_name=config.model_package_group_name,
                target=targets.CodePipeline(deploy.pipeline),
            ),
        )

        # --- as MonitoringStack
        ModelMonitoring(
            self,
            "ModelMonitoring",
            ModelMonitoringProps(
                config=config,
                stages=load_stages(),
                data_bucket=data_bucket,
                artifacts_bucket=artifacts_bucket,
                encryption_key=key,
                build_pipeline_arn=build.pipeline.pipeline_arn,
                build_pipeline_name=config.build_pipeline_name,
            ),
        )
        if source.repository is not None:
            PullRequestChecks(self, "PullRequestChecks", PullRequestChecksProps(source.repository, key))
        _add_build_variable(self, SAGEMAKER_PROJECT_ID_VARIABLE, project_id.value_as_string)

        outputs = {
            "BuildPipelineName": build.pipeline.pipeline_name,
            "DeployPipelineName": deploy.pipeline.pipeline_name,
            "ModelPackageGroupName": registry.model_package_group_name,
            "ExecutionRoleArn": execution_role.role_arn,
            "DataBucketName": data_bucket.bucket_name,
            "RawReviewsUri": f"s3://{data_bucket.bucket_name}/{config.raw_reviews_prefix}/",
        }
        if source.repository is not None:
            outputs["RepositoryCloneUrlGrc"] = source.repository.repository_clone_url_grc
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)


def _add_build_variable(stack: Stack, name: str, value: str) -> None:
    """Adds ``name=value`` to every CodeBuild project of ``stack``, after the ones its construct set.

    The project's CLI reads the project id from it (``model_build.config.load_config``), so the names it
    derives at run time are the ones this template created.
    """
    for construct in stack.node.find_all():
        if isinstance(construct, codebuild.CfnProject):
            environment = stack.resolve(construct.environment)
            count = len(
                environment.get("environmentVariables") or environment.get("EnvironmentVariables") or []
            )
            construct.add_property_override(
                f"Environment.EnvironmentVariables.{count}",
                {"Name": name, "Type": "PLAINTEXT", "Value": value},
            )
