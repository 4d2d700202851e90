"""The template a SageMaker project is created from: what ``cdk deploy --all`` deploys, in one template.

Studio (or ``aws sagemaker create-project``) provisions it through Service Catalog with two parameters,
``SageMakerProjectName`` and ``SageMakerProjectId``. The config is built from them
(:meth:`ProjectConfig.for_sagemaker_project`), so every name is the one the six stacks would get for that
project name with the project id as the environment, and two projects never share one.

The six stacks are separate CloudFormation stacks, which a Service Catalog product cannot be, so the product
calls the same builders the stacks call (``add_project_data``, ``add_feature_group``, ...), in the same order,
on itself; ``tests/infra/test_project_template.py`` checks that it holds the same resources as the stacks.

Deleting the project deletes this stack. What holds data is retained whatever the context says (``retainData``
would need a Lambda asset to empty buckets, and a product's assets need a bucket of their own): the KMS key,
the three buckets, the model package group, the CodeCommit repository and, with an online store, the feature
group. Everything else (pipelines, build projects, roles, rules, catalog, workgroup) is deleted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Fn, Stack, Tags
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_servicecatalog as servicecatalog
from constructs import Construct

from infra.nag import acknowledge
from infra.settings import InfraSettings
from infra.stacks.build_pipeline_stack import add_build_pipeline
from infra.stacks.data_stack import add_project_data
from infra.stacks.deploy_pipeline_stack import add_deploy_pipeline
from infra.stacks.feature_store_stack import add_feature_group
from infra.stacks.monitoring_stack import add_monitoring
from infra.stacks.registry_stack import add_registry
from model_build.config import (
    SAGEMAKER_PROJECT_ID_PATTERN,
    SAGEMAKER_PROJECT_ID_VARIABLE,
    SAGEMAKER_PROJECT_NAME_MAX_LENGTH,
    SAGEMAKER_PROJECT_NAME_PATTERN,
    ProjectConfig,
)
from model_deploy.aws.names import longest_sagemaker_project_id
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
            # Longer ids (SageMaker's are 14 characters today) would make names AWS refuses, such as the drift
            # monitoring jobs' (model_deploy/aws/names.py checks each against botocore's service models).
            max_length=longest_sagemaker_project_id(load_stages()),
            constraint_description="a SageMaker project id: p- and lowercase letters and digits, short enough "
            "for every name the project derives from it",
        )
        self.config = config = DeployTimeProjectConfig.for_sagemaker_project(
            project_name.value_as_string, project_id.value_as_string, region=region
        )
        # Above the app's tags (the published stack's project and environment): these are the project's own.
        for key, value in config.tags.items():
            Tags.of(self).add(key, value, priority=PROJECT_TAG_PRIORITY)

        # The six stacks' builders, in the stacks' order, with the product's settings.
        data = add_project_data(self, config, settings)
        storage = data.storage
        acknowledge(
            data.catalog.crawler,
            "AwsSolutions-GL1",
            "The crawler names its security configuration, which encrypts CloudWatch logs with the project key; "
            "cdk-nag cannot match the two names here because they hold the project id's Fn::Select",
        )
        feature_group = add_feature_group(self, config, settings, storage, data.catalog)
        registry = add_registry(
            self,
            config,
            settings,
            storage,
            feature_group=feature_group,
        )
        build = add_build_pipeline(
            self,
            config,
            settings,
            storage,
            execution_role=registry.execution_role,
            registry=registry.registry,
            # Each project gets its own repository; with GitHub, one the project's name names.
            repository_name=config.prefix if settings.source_type == "codecommit" else config.project_name,
        )
        deploy = add_deploy_pipeline(self, config, storage, source=build.source, registry=registry.registry)
        add_monitoring(self, config, storage, build_pipeline_arn=build.build.pipeline.pipeline_arn)
        _add_build_variable(self, SAGEMAKER_PROJECT_ID_VARIABLE, project_id.value_as_string)

        outputs = {
            "BuildPipelineName": build.build.pipeline.pipeline_name,
            "DeployPipelineName": deploy.deploy.pipeline.pipeline_name,
            "ModelPackageGroupName": registry.registry.model_package_group_name,
            "ExecutionRoleArn": registry.execution_role.role_arn,
            "DataBucketName": storage.data_bucket.bucket_name,
            "RawReviewsUri": f"s3://{storage.data_bucket.bucket_name}/{config.raw_reviews_prefix}/",
        }
        if build.source.repository is not None:
            outputs["RepositoryCloneUrlGrc"] = build.source.repository.repository_clone_url_grc
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
