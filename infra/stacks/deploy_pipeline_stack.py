"""Deploy CI/CD: the deploy pipeline, the rule that starts it, and the role each stage's model runs as.

The endpoints themselves are not in this stack: the pipeline renders and deploys one endpoint stack per stage
(``infra/stacks/endpoint_stack.py``) for each approved version. Their models' roles are here, created with
``cdk deploy``, so the role that deploys endpoint stacks never needs to create IAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.approval_rule import ApprovalRuleProps, ModelApprovedRule
from infra.constructs.deploy_pipeline import DeployPipeline, DeployPipelineProps, DeployStage
from infra.constructs.endpoint import EndpointExecutionRole, EndpointExecutionRoleProps
from infra.constructs.model_registry import ModelRegistry
from infra.constructs.project_storage import ProjectStorage
from infra.constructs.source_repository import SourceRepository
from infra.settings import InfraSettings
from model_build.config import ProjectConfig
from model_build.storage_layout import served_prefixes
from model_deploy.aws.names import endpoint_role_name, endpoint_stack_name
from model_deploy.stage_config import load_stages


@dataclass(frozen=True)
class ProjectDeploy:
    deploy: DeployPipeline
    approval_rule: events.Rule
    stages: tuple[DeployStage, ...]


def add_deploy_pipeline(
    scope: Construct,
    config: ProjectConfig,
    storage: ProjectStorage,
    *,
    source: SourceRepository,
    registry: ModelRegistry,
    human_review_workteam_arn: str | None = None,
) -> ProjectDeploy:
    """Adds each stage's model role, the deploy pipeline and its approval rule to ``scope``: the stack, or a
    project."""
    stages = []
    for stage, stage_config in load_stages().items():
        role = EndpointExecutionRole(
            scope,
            f"{stage.title()}EndpointRole",
            EndpointExecutionRoleProps(
                role_name=endpoint_role_name(config, stage),
                endpoint_name=config.endpoint_name(stage),
                storage=storage,
                model_artifacts_prefixes=served_prefixes(config),
                data_capture_key=config.data_capture_key(stage),
            ),
        ).role
        stages.append(
            DeployStage(
                stage=stage,
                endpoint_name=config.endpoint_name(stage),
                stack_name=endpoint_stack_name(config, stage),
                execution_role=role,
                update_timeout=Duration.seconds(stage_config.deployment.maximum_execution_timeout_seconds),
            )
        )
    deploy = DeployPipeline(
        scope,
        "DeployPipeline",
        DeployPipelineProps(
            pipeline_name=config.deploy_pipeline_name,
            project_name=config.project_name,
            environment=config.environment,
            model_package_group_name=config.model_package_group_name,
            registry=registry,
            source=source,
            storage=storage,
            artifacts_bucket_name=storage.artifacts_bucket.bucket_name,
            human_review_workteam_arn=human_review_workteam_arn or "",
            stages=tuple(stages),
        ),
    )
    approval_rule = ModelApprovedRule(
        scope,
        "ModelApprovedRule",
        ApprovalRuleProps(
            rule_name=config.approval_rule_name,
            model_package_group_name=config.model_package_group_name,
            target=targets.CodePipeline(deploy.pipeline),
        ),
    ).rule
    return ProjectDeploy(deploy, approval_rule, tuple(stages))


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
        added = add_deploy_pipeline(
            self,
            config,
            ProjectStorage.imported(self, config, encryption_key),
            source=source,
            registry=registry,
            human_review_workteam_arn=settings.human_review_workteam_arn,
        )
        self.deploy, self.approval_rule = added.deploy, added.approval_rule
        CfnOutput(self, "DeployPipelineName", value=self.deploy.pipeline.pipeline_name)
        CfnOutput(self, "ModelApprovedRuleName", value=self.approval_rule.rule_name)
        CfnOutput(self, "EndpointStackRoleArn", value=self.deploy.cloudformation_role.role_arn)
        for deploy_stage in added.stages:
            CfnOutput(self, f"{deploy_stage.title}EndpointName", value=deploy_stage.endpoint_name)
