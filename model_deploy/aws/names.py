"""The AWS names of the rollout that ``model_build.config`` does not hold, derived from it in one place.

The deploy-pipeline stack (``infra``) creates the roles and grants on the stacks named here, and the CLI
deploys those stacks; both import these functions, so a name is never spelled twice. (They would sit in
``ProjectConfig`` too; they live here because only the AWS rollout uses them.)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from model_build.config import ProjectConfig
from model_build.sagemaker_pipeline import ARTIFACT_BUCKET_VARIABLE as ARTIFACT_BUCKET_VARIABLE
from model_build.sagemaker_pipeline import DATA_BUCKET_VARIABLE as DATA_BUCKET_VARIABLE

VARIANT_NAME = "AllTraffic"
"""The production variant of every endpoint, the same in every version: deployment guardrails only update a
variant in place (blue/green) when the new endpoint config keeps its name. It is the SageMaker SDK's default."""


def endpoint_stack_name(config: ProjectConfig, stage: str) -> str:
    """The CloudFormation stack that holds a stage's endpoint: ``<project>-<env>-endpoint-<stage>``."""
    return f"{config.prefix}-endpoint-{stage}"


def endpoint_role_name(config: ProjectConfig, stage: str) -> str:
    """The role a stage's model runs as (created by the deploy-pipeline stack, passed to SageMaker)."""
    return f"{config.prefix}-endpoint-{stage}"


def alarm_names(endpoint_name: str) -> dict[str, str]:
    """The CloudWatch alarms that roll back an update of ``endpoint_name``, by metric."""
    return {
        "Invocation5XXErrors": f"{endpoint_name}-invocation-5xx-errors",
        "ModelLatency": f"{endpoint_name}-model-latency",
    }


# The CodeBuild environment variables the CLI reads, set by the deploy-pipeline stack (``infra``).
# The bucket names are the build project's (``model_build.sagemaker_pipeline``), one spelling for both:
# ``ARTIFACT_BUCKET`` is also where the drift monitor writes its reports (without it the render leaves the
# monitor out).
KMS_KEY_ARN_VARIABLE = "KMS_KEY_ARN"
CLOUDFORMATION_ROLE_VARIABLE = "CLOUDFORMATION_ROLE_ARN"
EXECUTION_ID_VARIABLE = "PIPELINE_EXECUTION_ID"


# The drift monitor (``infra/constructs/drift_monitor.py``, ``infra/stacks/monitoring_stack.py``).
def monitor_job_role_name(config: ProjectConfig) -> str:
    """The role the monitoring processing jobs run as (created by the monitoring stack)."""
    return f"{config.prefix}-drift-monitor"


def monitor_scheduler_role_name(config: ProjectConfig) -> str:
    """The role EventBridge Scheduler assumes to start a monitoring job."""
    return f"{config.prefix}-drift-monitor-scheduler"


def monitor_metric_namespace(config: ProjectConfig) -> str:
    """The CloudWatch namespace the monitoring job publishes its statistics in (dimension ``EndpointName``)."""
    return f"{config.prefix}/drift-monitor"


SCHEDULER_EXECUTION_ID_LENGTH = 16
"""EventBridge Scheduler's execution ids are 16 characters, "for example, d32c5kddcf5bb8c3"
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html)."""


def monitor_job_prefix(endpoint_name: str) -> str:
    """Monitoring jobs are named ``<endpoint>-m-<scheduler execution id>``: short, so that a SageMaker
    project's endpoint (a 20-character project name, its id, the stage) and the id fit a job name's 63."""
    return f"{endpoint_name}-m-"


def monitor_output_key(endpoint_name: str) -> str:
    """Where the jobs write their reports in the artifacts bucket: ``<key>/<job name>/``."""
    return f"monitoring/{endpoint_name}"


def drift_schedule_name(endpoint_name: str) -> str:
    """The EventBridge Scheduler schedule that starts the monitoring jobs of ``endpoint_name``."""
    return f"{endpoint_name}-drift-monitor"


def drift_alarm_name(endpoint_name: str) -> str:
    """The alarm on persistent drift, which notifies and (if the stage says so) starts retraining."""
    return f"{endpoint_name}-drift"


# Human review (``infra/constructs/human_review.py``, ``infra/constructs/human_loop_schedule.py``).
HUMAN_REVIEW_WORKTEAM_VARIABLE = "HUMAN_REVIEW_WORKTEAM_ARN"
"""The private workteam that reviews (the setting ``humanReviewWorkteamArn``); without it no human-loop job
is rendered."""


def human_review_role_name(config: ProjectConfig) -> str:
    """The role A2I flow definitions and Ground Truth labeling jobs run as (created by the monitoring stack)."""
    return f"{config.prefix}-human-review"


def human_loop_job_role_name(config: ProjectConfig) -> str:
    """The role the human-loop processing jobs run as."""
    return f"{config.prefix}-human-loops"


def human_loop_scheduler_role_name(config: ProjectConfig) -> str:
    """The role EventBridge Scheduler assumes to start a human-loop job."""
    return f"{config.prefix}-human-loops-scheduler"


def human_loop_job_prefix(endpoint_name: str) -> str:
    """Human-loop jobs are named ``<endpoint>-h-<scheduler execution id>`` (as the monitoring jobs)."""
    return f"{endpoint_name}-h-"


def human_loop_schedule_name(endpoint_name: str) -> str:
    return f"{endpoint_name}-human-loops"


def human_review_output_key(endpoint_name: str) -> str:
    """Where A2I writes the human loops' ``output.json`` in the artifacts bucket."""
    return f"human-review/{endpoint_name}"


HUMAN_REVIEW_PREFIX = "human-review"
"""The artifacts bucket's prefix that the human review role reads and writes: A2I's outputs, and Ground Truth
jobs' inputs (``label start`` copies them there) and outputs."""


def flow_definition_prefix(endpoint_name: str) -> str:
    """A stage's flow definitions are ``<endpoint>-review-<digest of the request>``
    (``review_rule.flow_definition_request``)."""
    return f"{endpoint_name}-review"


def human_task_ui_name(endpoint_name: str) -> str:
    """The stage's worker task UI, found by name by the flow definition request."""
    return f"{endpoint_name}-sentiment-review"


# --- Every name the project generates, checked against botocore's service models ---------------------------

# A model package version as long as any the checks assume (a group's 9,999th version).
LONGEST_PACKAGE_VERSION = "9999"
# The digest at the end of model and endpoint config names (``infra/constructs/endpoint.py``).
MODEL_NAME_DIGEST_LENGTH = 8
FLOW_DIGEST_LENGTH = 8
"""The digest at the end of flow definition names (``model_build/steps/review_rule.py``, checked equal)."""


def generated_names(config: ProjectConfig, stages: Iterable[str]) -> list[tuple[str, str, str, str, str]]:
    """``(what, name, service, operation, member)`` for each name the project generates for ``config``: the
    request member of the call that creates it, whose shape says what AWS accepts. Names made at run time
    (monitoring jobs, model and endpoint config names) are their longest."""
    from model_build.step_roles import step_roles  # the pipeline spec, only where names are checked

    sagemaker = "sagemaker"
    names = [
        ("SageMaker pipeline", config.pipeline_name, sagemaker, "CreatePipeline", "PipelineName"),
        ("model package group", config.model_package_group_name, sagemaker, "CreateModelPackageGroup",
         "ModelPackageGroupName"),
        ("feature group", config.feature_group_name, sagemaker, "CreateFeatureGroup", "FeatureGroupName"),
        ("build pipeline", config.build_pipeline_name, "codepipeline", "CreatePipeline", "pipeline.name"),
        ("deploy pipeline", config.deploy_pipeline_name, "codepipeline", "CreatePipeline", "pipeline.name"),
        ("execution role", config.execution_role_name, "iam", "CreateRole", "RoleName"),
        ("drift monitor role", monitor_job_role_name(config), "iam", "CreateRole", "RoleName"),
        ("drift monitor scheduler role", monitor_scheduler_role_name(config), "iam", "CreateRole", "RoleName"),
        *(("step role", step.role_name, "iam", "CreateRole", "RoleName") for step in step_roles(config)),
        ("human review role", human_review_role_name(config), "iam", "CreateRole", "RoleName"),
        ("human-loop job role", human_loop_job_role_name(config), "iam", "CreateRole", "RoleName"),
        ("human-loop scheduler role", human_loop_scheduler_role_name(config), "iam", "CreateRole", "RoleName"),
    ]  # fmt: skip
    for stage in stages:
        endpoint = config.endpoint_name(stage)
        model = f"{endpoint}-{LONGEST_PACKAGE_VERSION}-{'0' * MODEL_NAME_DIGEST_LENGTH}"
        names += [
            (f"{stage} endpoint", endpoint, sagemaker, "CreateEndpoint", "EndpointName"),
            (f"{stage} model", model, sagemaker, "CreateModel", "ModelName"),
            (f"{stage} endpoint config", model, sagemaker, "CreateEndpointConfig", "EndpointConfigName"),
            (f"{stage} endpoint role", endpoint_role_name(config, stage), "iam", "CreateRole", "RoleName"),
            (
                f"{stage} drift monitoring job",
                f"{monitor_job_prefix(endpoint)}{'0' * SCHEDULER_EXECUTION_ID_LENGTH}",
                sagemaker,
                "CreateProcessingJob",
                "ProcessingJobName",
            ),
            (
                f"{stage} drift monitor schedule",
                drift_schedule_name(endpoint),
                "scheduler",
                "CreateSchedule",
                "Name",
            ),
            (
                f"{stage} human-loop job",
                f"{human_loop_job_prefix(endpoint)}{'0' * SCHEDULER_EXECUTION_ID_LENGTH}",
                sagemaker,
                "CreateProcessingJob",
                "ProcessingJobName",
            ),
            (
                f"{stage} human-loop schedule",
                human_loop_schedule_name(endpoint),
                "scheduler",
                "CreateSchedule",
                "Name",
            ),
            (
                f"{stage} flow definition",
                f"{flow_definition_prefix(endpoint)}-{'0' * FLOW_DIGEST_LENGTH}",
                sagemaker,
                "CreateFlowDefinition",
                "FlowDefinitionName",
            ),
            (
                f"{stage} task UI",
                human_task_ui_name(endpoint),
                sagemaker,
                "CreateHumanTaskUi",
                "HumanTaskUiName",
            ),
            *(
                (f"{stage} alarm", name, "cloudwatch", "PutMetricAlarm", "AlarmName")
                for name in (*alarm_names(endpoint).values(), drift_alarm_name(endpoint))
            ),
        ]
    return names


@functools.cache
def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()


def name_problems(config: ProjectConfig, stages: Iterable[str]) -> list[str]:
    """What AWS would refuse among :func:`generated_names`, each with the limit of the shape that refuses it."""
    session = _botocore_session()
    problems = []
    for what, name, service, operation, member in generated_names(config, stages):
        shape = session.get_service_model(service).operation_model(operation).input_shape
        for part in member.split("."):
            shape = shape.members[part]
        limits = shape.metadata
        where = f"{service} {operation} {member}"
        if len(name) > limits.get("max", len(name)):
            problems.append(f"the {what} {name!r} has {len(name)} characters, {where} allows {limits['max']}")
        elif "pattern" in limits and not re.fullmatch(limits["pattern"], name):
            problems.append(f"the {what} {name!r} does not match {where}'s pattern {limits['pattern']}")
    return problems


def check_names(config: ProjectConfig, stages: Iterable[str]) -> None:
    """Refuse a config whose generated names AWS would refuse, naming each name and its limit."""
    problems = name_problems(config, stages)
    if problems:
        raise ValueError(
            f"project_name={config.project_name!r} and environment={config.environment!r} make names AWS "
            f"refuses: {'; '.join(problems)}. Shorten the project name or environment"
        )


def longest_sagemaker_project_id(stages: Iterable[str]) -> int:
    """The longest SageMaker project id whose names AWS accepts with the longest project name the product
    takes (today's ids are ``p-`` and 12 characters): the product's ``SageMakerProjectId`` parameter's limit."""
    from model_build.config import (
        SAGEMAKER_PROJECT_ID_MAX_LENGTH,
        SAGEMAKER_PROJECT_NAME_MAX_LENGTH,
    )

    stages = tuple(stages)
    name = "a" * SAGEMAKER_PROJECT_NAME_MAX_LENGTH
    fitting = [
        length
        for length in range(3, SAGEMAKER_PROJECT_ID_MAX_LENGTH + 1)
        if not name_problems(ProjectConfig.for_sagemaker_project(name, "p-" + "0" * (length - 2)), stages)
    ]
    if not fitting:
        raise ValueError("no SageMaker project id makes names AWS accepts with a 20-character project name")
    return max(fitting)
