"""Deploy CI/CD: the deploy pipeline and the rule that starts it when a model version is approved."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.approval_rule import ApprovalRuleProps, ModelApprovedRule
from infra.constructs.deploy_pipeline import DeployPipeline, DeployPipelineProps
from infra.constructs.model_registry import ModelRegistry
from infra.constructs.secure_bucket import import_project_bucket
from infra.constructs.source_repository import SourceRepository
from infra.settings import InfraSettings
from pipelines.config import ProjectConfig


class DeployPipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        source: SourceRepository,
        registry: ModelRegistry,
        encryption_key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        artifacts_bucket = import_project_bucket(
            self, "ArtifactsBucket", config.artifacts_bucket_prefix, encryption_key
        )
        self.deploy = DeployPipeline(
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
                artifacts_bucket=artifacts_bucket,
                encryption_key=encryption_key,
            ),
        )
        self.approval_rule = ModelApprovedRule(
            self,
            "ModelApprovedRule",
            ApprovalRuleProps(
                rule_name=config.approval_rule_name,
                model_package_group_name=config.model_package_group_name,
                target=targets.CodePipeline(self.deploy.pipeline),
            ),
        ).rule
        CfnOutput(self, "DeployPipelineName", value=self.deploy.pipeline.pipeline_name)
        CfnOutput(self, "ModelApprovedRuleName", value=self.approval_rule.rule_name)
