"""The AWS names of the rollout that ``model_build.config`` does not hold, derived from it in one place.

The deploy-pipeline stack (``infra``) creates the roles and grants on the stacks named here, and the CLI
deploys those stacks; both import these functions, so a name is never spelled twice. (They would sit in
``ProjectConfig`` too; they live here because only the AWS rollout uses them.)
"""

from __future__ import annotations

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


def monitor_job_prefix(endpoint_name: str) -> str:
    """Monitoring jobs are named ``<endpoint>-monitor-<scheduler execution id>``."""
    return f"{endpoint_name}-monitor-"


def monitor_output_key(endpoint_name: str) -> str:
    """Where the jobs write their reports in the artifacts bucket: ``<key>/<job name>/``."""
    return f"monitoring/{endpoint_name}"


def drift_alarm_name(endpoint_name: str) -> str:
    """The alarm on persistent drift, which notifies and (if the stage says so) starts retraining."""
    return f"{endpoint_name}-drift"
