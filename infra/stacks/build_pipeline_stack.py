"""Build CI/CD: the source repository and the CodePipeline that runs the SageMaker pipeline on each push."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.build_pipeline import BuildPipeline, BuildPipelineProps
from infra.constructs.pull_request_checks import PullRequestChecks, PullRequestChecksProps
from infra.constructs.secure_bucket import import_project_bucket
from infra.constructs.source_repository import SourceRepository, SourceRepositoryProps
from infra.settings import InfraSettings
from model_build.config import ProjectConfig


class BuildPipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        execution_role: iam.IRole,
        encryption_key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data_bucket = import_project_bucket(self, "DataBucket", config.data_bucket_prefix, encryption_key)
        artifacts_bucket = import_project_bucket(
            self, "ArtifactsBucket", config.artifacts_bucket_prefix, encryption_key
        )
        cicd_bucket = import_project_bucket(self, "CicdBucket", config.cicd_bucket_prefix, encryption_key)
        self.source = SourceRepository(
            self,
            "SourceRepository",
            SourceRepositoryProps(
                source_type=settings.source_type,
                repository_name=settings.repository_name or config.project_name,
                branch=settings.branch,
                repository_owner=settings.repository_owner,
                code_connection_arn=settings.code_connection_arn,
                removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
            ),
        )
        self.build = BuildPipeline(
            self,
            "BuildPipeline",
            BuildPipelineProps(
                pipeline_name=config.build_pipeline_name,
                sagemaker_pipeline_name=config.pipeline_name,
                project_name=config.project_name,
                environment=config.environment,
                source=self.source,
                execution_role=execution_role,
                data_bucket=data_bucket,
                artifacts_bucket=artifacts_bucket,
                code_prefix=config.pipeline_artifacts_prefix,
                cicd_bucket=cicd_bucket,
                encryption_key=encryption_key,
                retrain_schedule=settings.retrain_schedule,
            ),
        )
        CfnOutput(self, "BuildPipelineName", value=self.build.pipeline.pipeline_name)
        CfnOutput(self, "BuildProjectName", value=self.build.project.project_name)
        self.pull_request_checks: PullRequestChecks | None = None
        if self.source.repository is not None:
            CfnOutput(self, "RepositoryCloneUrlGrc", value=self.source.repository.repository_clone_url_grc)
            # GitHub repositories run these checks in .github/workflows/ci.yml.
            self.pull_request_checks = PullRequestChecks(
                self, "PullRequestChecks", PullRequestChecksProps(self.source.repository, encryption_key)
            )
