"""Monitoring: the drift monitor's roles, its alarms and notifications, retraining on drift, the dashboard.

The schedules that run the monitoring job are in the rendered endpoint stacks (each version has its own
baseline); everything that outlives a version is here, created with ``cdk deploy``.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.human_review import HumanReview, HumanReviewProps
from infra.constructs.model_monitoring import ModelMonitoring, ModelMonitoringProps
from infra.constructs.project_storage import ProjectStorage
from infra.settings import InfraSettings
from model_build.config import ProjectConfig
from model_deploy.stage_config import load_stages


def add_monitoring(
    scope: Construct, config: ProjectConfig, storage: ProjectStorage, *, build_pipeline_arn: str
) -> ModelMonitoring:
    """Adds the drift monitor's roles, alarms, retraining and dashboard to ``scope``: the stack, or a project."""
    return ModelMonitoring(
        scope,
        "ModelMonitoring",
        ModelMonitoringProps(
            config=config,
            stages=load_stages(),
            storage=storage,
            build_pipeline_arn=build_pipeline_arn,
            build_pipeline_name=config.build_pipeline_name,
        ),
    )


def add_human_review(
    scope: Construct, config: ProjectConfig, storage: ProjectStorage, *, workteam_arn: str
) -> HumanReview:
    """Adds the task UIs and the roles of human review (A2I, Ground Truth) for the workteam to ``scope``."""
    return HumanReview(
        scope,
        "HumanReview",
        HumanReviewProps(
            config=config,
            stages=load_stages(),
            workteam_arn=workteam_arn,
            storage=storage,
        ),
    )


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        encryption_key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        storage = ProjectStorage.imported(self, config, encryption_key)
        self.monitoring = add_monitoring(
            self,
            config,
            storage,
            build_pipeline_arn=self.format_arn(service="codepipeline", resource=config.build_pipeline_name),
        )
        self.human_review = None
        if settings.human_review_workteam_arn:
            self.human_review = add_human_review(
                self, config, storage, workteam_arn=settings.human_review_workteam_arn
            )
            CfnOutput(self, "HumanReviewRoleArn", value=self.human_review.review_role.role_arn)
        CfnOutput(self, "MonitoringTopicArn", value=self.monitoring.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        CfnOutput(self, "MonitorJobRoleArn", value=self.monitoring.job_role.role_arn)
