"""Build CI/CD: the source repository and the CodePipeline that runs the SageMaker pipeline on each push."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.build_pipeline import BuildPipeline, BuildPipelineProps
from infra.constructs.experiment_tracking import tracking_server_arn
from infra.constructs.model_registry import ModelRegistry
from infra.constructs.project_storage import ProjectStorage
from infra.constructs.pull_request_checks import PullRequestChecks, PullRequestChecksProps
from infra.constructs.source_repository import SourceRepository, SourceRepositoryProps
from infra.settings import InfraSettings
from model_build.config import ProjectConfig
from model_build.storage_layout import pipeline_storage
from model_deploy.stage_config import STAGES


@dataclass(frozen=True)
class ProjectBuild:
    source: SourceRepository
    build: BuildPipeline
    pull_request_checks: PullRequestChecks | None
    """None with a GitHub repository, whose pull requests run ``.github/workflows/ci.yml`` instead."""


def add_build_pipeline(
    scope: Construct,
    config: ProjectConfig,
    settings: InfraSettings,
    storage: ProjectStorage,
    *,
    execution_role: iam.IRole,
    registry: ModelRegistry,
    repository_name: str,
) -> ProjectBuild:
    """Adds the repository, the build pipeline and the pull request checks to ``scope``: the stack, or a project."""
    source = SourceRepository(
        scope,
        "SourceRepository",
        SourceRepositoryProps(
            source_type=settings.source_type,
            repository_name=repository_name,
            branch=settings.branch,
            repository_owner=settings.repository_owner,
            code_connection_arn=settings.code_connection_arn,
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
        ),
    )
    build = BuildPipeline(
        scope,
        "BuildPipeline",
        BuildPipelineProps(
            pipeline_name=config.build_pipeline_name,
            sagemaker_pipeline_name=config.pipeline_name,
            project_name=config.project_name,
            environment=config.environment,
            source=source,
            execution_role=execution_role,
            storage=storage,
            input_prefixes=pipeline_storage(config).data_prefixes,
            code_prefix=config.pipeline_artifacts_prefix,
            retrain_schedule=settings.retrain_schedule,
            champion_endpoint_name=config.endpoint_name(STAGES[-1]),
            registry=registry,
            mlflow_tracking_server_arn=tracking_server_arn(
                scope, settings.mlflow_tracking_server, config.mlflow_tracking_server_name
            ),
        ),
    )
    checks = None
    if source.repository is not None:
        checks = PullRequestChecks(
            scope, "PullRequestChecks", PullRequestChecksProps(source.repository, storage.key)
        )
    return ProjectBuild(source, build, checks)


class BuildPipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        execution_role: iam.IRole,
        registry: ModelRegistry,
        encryption_key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        added = add_build_pipeline(
            self,
            config,
            settings,
            ProjectStorage.imported(self, config, encryption_key),
            execution_role=execution_role,
            registry=registry,
            repository_name=settings.repository_name or config.project_name,
        )
        self.source, self.build, self.pull_request_checks = (
            added.source,
            added.build,
            added.pull_request_checks,
        )
        CfnOutput(self, "BuildPipelineName", value=self.build.pipeline.pipeline_name)
        CfnOutput(self, "BuildProjectName", value=self.build.project.project_name)
        if self.source.repository is not None:
            CfnOutput(self, "RepositoryCloneUrlGrc", value=self.source.repository.repository_clone_url_grc)
