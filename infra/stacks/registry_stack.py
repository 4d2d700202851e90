"""Registry: the model package group, the SageMaker execution role, and the roles of the pipeline's job steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.execution_role import (
    ExecutionRoleProps,
    SageMakerExecutionRole,
    SageMakerStepRole,
    StepRoleProps,
)
from infra.constructs.experiment_tracking import ExperimentTracking, ExperimentTrackingProps
from infra.constructs.feature_group import ReviewFeatureGroup
from infra.constructs.model_registry import ModelRegistry, ModelRegistryProps
from infra.constructs.project_storage import ProjectStorage
from infra.settings import InfraSettings
from model_build.config import ProjectConfig
from model_build.step_roles import step_roles
from model_build.storage_layout import pipeline_storage


@dataclass(frozen=True)
class ProjectRegistry:
    registry: ModelRegistry
    execution_role: iam.IRole
    step_roles: dict[str, iam.IRole]
    """Job step name -> the role its jobs run as."""
    experiment_tracking: ExperimentTracking | None = None
    """The MLflow tracking server the jobs log to (context ``mlflowTrackingServer``), if any."""


def add_registry(
    scope: Construct,
    config: ProjectConfig,
    settings: InfraSettings,
    storage: ProjectStorage,
    *,
    feature_group: ReviewFeatureGroup,
) -> ProjectRegistry:
    """Adds the model package group, the execution role and one role per job step of the pipeline to
    ``scope``: the registry stack, or a project."""
    registry = ModelRegistry(
        scope,
        "ModelRegistry",
        ModelRegistryProps(
            model_package_group_name=config.model_package_group_name,
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
        ),
    )
    layout = pipeline_storage(config)
    tracking = (
        ExperimentTracking(
            scope,
            "ExperimentTracking",
            ExperimentTrackingProps(
                setting=settings.mlflow_tracking_server,
                tracking_server_name=config.mlflow_tracking_server_name,
                storage=storage,
                artifacts_prefix=config.mlflow_artifacts_prefix,
            ),
        )
        if settings.mlflow_tracking_server
        else None
    )
    roles: dict[str, iam.IRole] = {
        step.step: SageMakerStepRole(
            scope,
            f"{step.step}Role",
            StepRoleProps(
                step=step,
                storage=storage,
                feature_group=feature_group,
                layout=layout,
                experiment_tracking=tracking,
            ),
        ).role
        for step in step_roles(config)
    }
    execution_role = SageMakerExecutionRole(
        scope,
        "ExecutionRole",
        ExecutionRoleProps(
            role_name=config.execution_role_name,
            pipeline_name=config.pipeline_name,
            storage=storage,
            registry=registry,
            step_roles=tuple(roles.values()),
            layout=layout,
        ),
    ).role
    return ProjectRegistry(registry, execution_role, roles, tracking)


class RegistryStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        encryption_key: kms.IKey,
        feature_group: ReviewFeatureGroup,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        added = add_registry(
            self,
            config,
            settings,
            ProjectStorage.imported(self, config, encryption_key),
            feature_group=feature_group,
        )
        self.registry, self.execution_role = added.registry, added.execution_role
        self.step_roles = added.step_roles
        CfnOutput(self, "ModelPackageGroupName", value=self.registry.model_package_group_name)
        CfnOutput(self, "ModelPackageGroupArn", value=self.registry.arn)
        CfnOutput(self, "ExecutionRoleArn", value=self.execution_role.role_arn)
        if added.experiment_tracking is not None:
            CfnOutput(self, "MlflowTrackingServerArn", value=added.experiment_tracking.tracking_server_arn)
