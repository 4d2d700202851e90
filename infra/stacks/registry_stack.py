"""Registry: the model package group and the SageMaker execution role that may use the project's resources."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.execution_role import ExecutionRoleProps, SageMakerExecutionRole
from infra.constructs.model_registry import ModelRegistry, ModelRegistryProps
from infra.constructs.secure_bucket import import_project_bucket
from infra.settings import InfraSettings
from model_build.config import ProjectConfig
from model_build.storage_layout import pipeline_storage


class RegistryStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        encryption_key: kms.IKey,
        feature_group_arn: str,
        athena_workgroup_arn: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data_bucket = import_project_bucket(self, "DataBucket", config.data_bucket_prefix, encryption_key)
        artifacts_bucket = import_project_bucket(
            self, "ArtifactsBucket", config.artifacts_bucket_prefix, encryption_key
        )
        self.registry = ModelRegistry(
            self,
            "ModelRegistry",
            ModelRegistryProps(
                model_package_group_name=config.model_package_group_name,
                removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
            ),
        )
        self.execution_role = SageMakerExecutionRole(
            self,
            "ExecutionRole",
            ExecutionRoleProps(
                role_name=config.execution_role_name,
                pipeline_name=config.pipeline_name,
                data_bucket=data_bucket,
                artifacts_bucket=artifacts_bucket,
                encryption_key=encryption_key,
                feature_group_arn=feature_group_arn,
                model_package_group_arn=self.registry.arn,
                model_packages_arn=self.registry.model_packages_arn,
                glue_database_name=config.glue_database_name,
                athena_workgroup_arn=athena_workgroup_arn,
                storage=pipeline_storage(config),
            ),
        ).role
        CfnOutput(self, "ModelPackageGroupName", value=self.registry.model_package_group_name)
        CfnOutput(self, "ModelPackageGroupArn", value=self.registry.arn)
        CfnOutput(self, "ExecutionRoleArn", value=self.execution_role.role_arn)
