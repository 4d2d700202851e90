"""Builds the whole CDK app from the project config and the deployment settings.

``app.py`` and the tests both call :func:`build_app`, so what the tests check is what ``cdk synth`` deploys.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Environment, Stack, Tags

from infra.nag import add_nag_checks
from infra.project_template_settings import ProjectTemplateSettings
from infra.settings import InfraSettings, SettingsError
from infra.stacks.build_pipeline_stack import BuildPipelineStack
from infra.stacks.data_stack import DataStack
from infra.stacks.deploy_pipeline_stack import DeployPipelineStack
from infra.stacks.feature_store_stack import FeatureStoreStack
from infra.stacks.monitoring_stack import MonitoringStack
from infra.stacks.project_template_stack import ProjectTemplateStack
from infra.stacks.registry_stack import RegistryStack
from model_build.config import ProjectConfig, load_config
from model_deploy.aws.names import check_names
from model_deploy.stage_config import load_stages


@dataclass(frozen=True)
class MlopsStacks:
    data: DataStack
    feature_store: FeatureStoreStack
    registry: RegistryStack
    build: BuildPipelineStack
    deploy: DeployPipelineStack
    monitoring: MonitoringStack

    def all(self) -> tuple[Stack, ...]:
        return (self.data, self.feature_store, self.registry, self.build, self.deploy, self.monitoring)


def load_from_context(app: App) -> tuple[ProjectConfig, InfraSettings]:
    """The settings from the app's context, and the config with the context's project/environment applied."""
    settings = InfraSettings.from_context(app.node.try_get_context)
    try:
        config = load_config(project_name=settings.project_name, environment=settings.environment)
        check_names(config, load_stages())
    except ValueError as error:
        raise SettingsError(f"context projectName/environment (or MLOPS_* variables): {error}") from error
    return config, settings


def build_app(
    app: App,
    config: ProjectConfig,
    settings: InfraSettings,
    *,
    env: Environment | None = None,
    nag: bool = True,
) -> MlopsStacks:
    """Adds the six stacks to ``app``; with ``nag`` the AwsSolutions checks run when it is synthesized.

    Without ``env`` the stacks are environment-agnostic: account and region stay CloudFormation pseudo
    parameters, so synthesis needs no credentials and does no lookups.
    """
    stack_args = {"env": env, "tags": config.tags}
    data = DataStack(
        app,
        f"{config.prefix}-data",
        config=config,
        settings=settings,
        description="MLOps template: encrypted buckets, Glue catalog and Athena workgroup",
        **stack_args,
    )
    feature_store = FeatureStoreStack(
        app,
        f"{config.prefix}-feature-store",
        config=config,
        settings=settings,
        encryption_key=data.key,
        catalog=data.catalog,
        description="MLOps template: the review feature group",
        **stack_args,
    )
    registry = RegistryStack(
        app,
        f"{config.prefix}-registry",
        config=config,
        settings=settings,
        encryption_key=data.key,
        feature_group=feature_store.feature_group,
        description="MLOps template: model registry, SageMaker execution role and job step roles",
        **stack_args,
    )
    build = BuildPipelineStack(
        app,
        f"{config.prefix}-build-pipeline",
        config=config,
        settings=settings,
        execution_role=registry.execution_role,
        registry=registry.registry,
        encryption_key=data.key,
        description="MLOps template: model build CI/CD",
        **stack_args,
    )
    deploy = DeployPipelineStack(
        app,
        f"{config.prefix}-deploy-pipeline",
        config=config,
        settings=settings,
        source=build.source,
        registry=registry.registry,
        encryption_key=data.key,
        description="MLOps template: model deploy CI/CD, started by a model approval",
        **stack_args,
    )
    monitoring = MonitoringStack(
        app,
        f"{config.prefix}-monitoring",
        config=config,
        settings=settings,
        encryption_key=data.key,
        description="MLOps template: drift monitor roles, alarms, retraining on drift, dashboard",
        **stack_args,
    )
    # Buckets are imported by their derived names and the feature group ARN is built from its name, which
    # make no CloudFormation references: the deployment order is declared instead.
    for stack, depends_on in (
        (feature_store, data),
        (registry, feature_store),
        (build, registry),
        (deploy, build),
        (monitoring, deploy),
    ):
        stack.add_stack_dependency(depends_on)
    for key, value in config.tags.items():
        Tags.of(app).add(key, value)
    if nag:
        add_nag_checks(app)
    return MlopsStacks(data, feature_store, registry, build, deploy, monitoring)


def build_project_template(
    app: App,
    config: ProjectConfig,
    settings: InfraSettings,
    template_settings: ProjectTemplateSettings,
    *,
    env: Environment | None = None,
) -> ProjectTemplateStack:
    """Adds the SageMaker project template (portfolio, product, launch role); ``build_app`` adds the checks."""
    return ProjectTemplateStack(
        app,
        config.project_template_stack_name,
        config=config,
        settings=settings,
        template_settings=template_settings,
        env=env,
        description="MLOps template: the SageMaker project template (Service Catalog portfolio and product)",
    )
