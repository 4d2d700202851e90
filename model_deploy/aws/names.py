"""The AWS names of the rollout that ``model_build.config`` does not hold, derived from it in one place.

The deploy-pipeline stack (``infra``) creates the roles and grants on the stacks named here, and the CLI
deploys those stacks; both import these functions, so a name is never spelled twice. (They would sit in
``ProjectConfig`` too; they live here because only the AWS rollout uses them.)
"""

from __future__ import annotations

from model_build.config import ProjectConfig

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
DATA_BUCKET_VARIABLE = "DATA_BUCKET"
KMS_KEY_ARN_VARIABLE = "KMS_KEY_ARN"
CLOUDFORMATION_ROLE_VARIABLE = "CLOUDFORMATION_ROLE_ARN"
EXECUTION_ID_VARIABLE = "PIPELINE_EXECUTION_ID"
