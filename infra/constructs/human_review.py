"""Human review on AWS (Amazon A2I, Ground Truth): the task UIs and the roles, created with ``cdk deploy``.

For a private workteam whose ARN is a setting (``humanReviewWorkteamArn``: the team is the platform's; the
docs/reviewers.md, "On AWS", says how to make one), :class:`HumanReview` makes:

- per stage, the worker task UI (``AWS::SageMaker::HumanTaskUi`` holding
  :data:`model_deploy.aws.human_review.TASK_TEMPLATE`: the review, negative / neutral / positive, the model's
  answer not shown);
- the **human review role**, which A2I flow definitions and Ground Truth labeling jobs run as: it reads and
  writes only under the artifacts bucket's ``human-review/`` prefix (A2I's outputs; Ground Truth's manifests,
  label file, template and outputs, which ``python -m model_deploy label start`` puts there), with the
  project key (https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-permissions-security.html,
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-security-permission-execution-role.html);
- the **human-loop job role** (the scheduled job, ``model_build/steps/human_loops.py``): reads the served
  version's baseline code and the captures, creates and describes only the stages' flow definitions, for this
  workteam only (``sagemaker:WorkteamArn``), passing only the human review role, and starts human loops in
  them;
- the **scheduler role**: EventBridge Scheduler starts the human-loop jobs (``<endpoint>-h-<id>``) as the job
  role.

The schedules themselves are rendered into each endpoint stack (``infra/constructs/human_loop_schedule.py``),
as the drift monitor's are: their code comes with the served version. A flow definition has no CloudFormation
resource: the job creates it from the rendered request (``review_rule.ensure_flow_definition``).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.constructs.framework_images import framework_images, grant_pull_framework_images
from infra.constructs.grants import add_statements, grant_pass_role, grant_write_logs
from infra.constructs.project_storage import ProjectStorage
from infra.nag import acknowledge, nag_spelling
from model_build.config import ProjectConfig
from model_deploy.aws.human_review import TASK_TEMPLATE
from model_deploy.aws.names import (
    HUMAN_REVIEW_PREFIX,
    flow_definition_prefix,
    human_loop_job_prefix,
    human_loop_job_role_name,
    human_loop_scheduler_role_name,
    human_review_role_name,
    human_task_ui_name,
)
from model_deploy.stage_config import StageConfig


class HumanTaskUi(Construct):
    """A stage's worker task UI: the review and the three labels (:data:`TASK_TEMPLATE`)."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.resource = sagemaker.CfnHumanTaskUi(
            self,
            "Resource",
            human_task_ui_name=name,
            ui_template=sagemaker.CfnHumanTaskUi.UiTemplateProperty(content=TASK_TEMPLATE),
        )
        self.arn = self.resource.attr_human_task_ui_arn


@dataclass(frozen=True)
class HumanReviewProps:
    config: ProjectConfig
    stages: dict[str, StageConfig]
    workteam_arn: str
    storage: ProjectStorage


class HumanReview(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: HumanReviewProps) -> None:
        super().__init__(scope, construct_id)
        config = props.config
        self.task_uis = {
            stage: HumanTaskUi(
                self, f"{stage.title()}TaskUi", name=human_task_ui_name(config.endpoint_name(stage))
            )
            for stage in props.stages
        }
        self.scheduled = [
            s for s, c in props.stages.items() if c.human_review.schedule_expression is not None
        ]
        self.review_role = self._review_role(props)
        self.job_role = self._job_role(props)
        self.scheduler_role = self._scheduler_role(props)

    def _review_role(self, props: HumanReviewProps) -> iam.Role:
        """What A2I and Ground Truth do as the project: read their inputs and write their outputs under
        ``human-review/``, encrypted with the project key."""
        role = iam.Role(
            self,
            "ReviewRole",
            role_name=human_review_role_name(props.config),
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="Amazon A2I flow definitions and Ground Truth labeling jobs run as this role",
        )
        objects = props.storage.artifacts_bucket.arn_for_objects(f"{HUMAN_REVIEW_PREFIX}/*")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadAndWriteHumanReview", actions=["s3:GetObject", "s3:PutObject"], resources=[objects]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListHumanReview",
                actions=["s3:ListBucket"],
                resources=[props.storage.artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{HUMAN_REVIEW_PREFIX}/*"]}},
            )
        )
        props.storage.grant_key_use(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "A2I and Ground Truth name their output objects (per loop, per job) under human-review/.",
            [f"Resource::{nag_spelling(self, objects)}"],
        )
        return role

    def _job_role(self, props: HumanReviewProps) -> iam.Role:
        """What the human-loop job reads and calls: the baseline code, the captures, the stages' flow
        definitions and human loops, logs."""
        config = props.config
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "JobRole",
            role_name=human_loop_job_role_name(config),
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="The human-loop processing jobs run as this role",
        )
        storage = props.storage
        baselines = storage.artifacts_bucket.arn_for_objects(f"{config.pipeline_artifacts_prefix}/*")
        captures = storage.data_bucket.arn_for_objects(f"{config.data_capture_prefix}/*")
        flows = [
            stack.format_arn(
                service="sagemaker",
                resource="flow-definition",
                resource_name=f"{flow_definition_prefix(config.endpoint_name(stage))}-*",
            )
            for stage in self.scheduled
        ]
        log_group = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/ProcessingJobs",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        add_statements(
            role,
            iam.PolicyStatement(sid="ReadBaselineCode", actions=["s3:GetObject"], resources=[baselines]),
            iam.PolicyStatement(sid="ReadCaptures", actions=["s3:GetObject"], resources=[captures]),
            iam.PolicyStatement(
                sid="ListBaselinesAndCaptures",
                actions=["s3:ListBucket"],
                resources=[storage.artifacts_bucket.bucket_arn, storage.data_bucket.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [
                            f"{config.pipeline_artifacts_prefix}/*",
                            f"{config.data_capture_prefix}/*",
                        ]
                    }
                },
            ),
        )
        storage.grant_key_use(role)
        grant_pull_framework_images(role, stack)
        grant_write_logs(role, "JobLogs", [log_group, f"{log_group}:*"])
        if flows:
            add_statements(
                role,
                iam.PolicyStatement(
                    sid="CreateFlowDefinitions",
                    actions=["sagemaker:CreateFlowDefinition"],
                    resources=flows,
                    conditions={"StringEquals": {"sagemaker:WorkteamArn": props.workteam_arn}},
                ),
                iam.PolicyStatement(
                    sid="UseFlowDefinitions",
                    actions=["sagemaker:DescribeFlowDefinition", "sagemaker:StartHumanLoop"],
                    resources=flows,
                ),
            )
            grant_pass_role(
                role, [self.review_role.role_arn], service="sagemaker.amazonaws.com", sid="PassReviewRole"
            )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Each wildcard is as narrow as the resource allows: baselines under the build pipeline's prefix "
            "(keys named by each execution), captures under the capture prefix (SageMaker names the files), "
            "flow definitions named <endpoint>-review-<digest of their settings>, the processing jobs' log "
            "streams, the framework images; '*' only for ecr:GetAuthorizationToken.",
            [
                f"Resource::{nag_spelling(self, resource)}"
                for resource in (baselines, captures, *flows, f"{log_group}:*", framework_images(stack), "*")
            ],
        )
        return role

    def _scheduler_role(self, props: HumanReviewProps) -> iam.Role:
        """What EventBridge Scheduler may do: start the human-loop jobs, as the job role."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "SchedulerRole",
            role_name=human_loop_scheduler_role_name(props.config),
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="EventBridge Scheduler starts the human-loop processing jobs as this role",
        )
        jobs = [
            stack.format_arn(
                service="sagemaker",
                resource="processing-job",
                resource_name=f"{human_loop_job_prefix(props.config.endpoint_name(stage))}*",
            )
            for stage in self.scheduled
        ]
        if jobs:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="StartHumanLoopJobs",
                    actions=["sagemaker:CreateProcessingJob", "sagemaker:AddTags"],
                    resources=jobs,
                )
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Human-loop jobs are named <endpoint>-h-<scheduler execution id>: the id is known only when "
                "the schedule fires.",
                [f"Resource::{nag_spelling(self, job)}" for job in jobs],
            )
        props.storage.grant_key_to_aws_resources(role, actions=("kms:CreateGrant", "kms:DescribeKey"))
        grant_pass_role(role, [self.job_role.role_arn], service="sagemaker.amazonaws.com", sid="PassJobRole")
        return role
