"""The human-loop schedule: EventBridge Scheduler starts one SageMaker Processing job per window, which sends
the window's unsure answers to people (Amazon A2I human loops).

The drift monitor's pattern (``infra/constructs/drift_monitor.py``), for the same reasons: the job is a step
script (``model_build/steps/human_loops.py``) that the evaluation step copies into the version's monitoring
baseline with ``monitor.py``, so it runs on the same image with the same reader of the captures and the same
rule as ``pipelines review fill`` locally (``review_rule.read_captures``); each run's window ends at the
schedule's ``<aws.scheduler.scheduled-time>``, so a retried run reads the same window and, since loops are
named after each review's key, starts nothing twice. The job makes sure the stage's flow definition exists
(the request is rendered here with the stage's settings: ``review_rule.flow_definition_request``).

Lives in the rendered endpoint stack (the code comes with the served version's baseline); its roles are the
monitoring stack's (``infra/constructs/human_review.py``): the endpoint stack creates no IAM.

EventBridge Scheduler's universal target (``aws-sdk:sagemaker:createProcessingJob``) and context attributes:
https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html,
https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from infra.constructs.drift_monitor import (
    BASELINE_INPUT,
    EXECUTION_ID,
    SCHEDULED_TIME,
    UNIVERSAL_TARGET,
)
from model_deploy.aws.names import human_loop_job_prefix, human_loop_schedule_name
from model_deploy.stage_config import HumanReviewSettings

MAX_RUNTIME_SECONDS = 1800


@dataclass(frozen=True)
class HumanLoopProps:
    endpoint_name: str
    human_review: HumanReviewSettings
    baseline_uri: str
    """The served version's monitoring baseline, with ``code/human_loops.py``."""
    captures_uri: str
    flow_definition: dict[str, Any]
    """The ``CreateFlowDefinition`` request (``model_deploy.aws.human_review.flow_definition_request``)."""
    image_uri: str
    job_role_name: str
    scheduler_role_name: str
    encryption_key_arn: str


def processing_job_request(props: HumanLoopProps, job_role_arn: str) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request the schedule sends, with the scheduler's context attributes."""
    review = props.human_review
    arguments = [
        "--captures", props.captures_uri,
        "--endpoint", props.endpoint_name,
        "--window-hours", str(review.window_hours),
        "--until", SCHEDULED_TIME,
        "--confidence-threshold", str(review.confidence_threshold),
        "--sample-share", str(review.sample_share),
        "--flow-definition", json.dumps(props.flow_definition, separators=(",", ":")),
    ]  # fmt: skip
    return {
        "ProcessingJobName": f"{human_loop_job_prefix(props.endpoint_name)}{EXECUTION_ID}",
        "RoleArn": job_role_arn,
        "AppSpecification": {
            "ImageUri": props.image_uri,
            # Standard library and boto3 only (the image has boto3): no requirements to install.
            "ContainerEntrypoint": ["python3", f"{BASELINE_INPUT}/code/human_loops.py"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": [
            {
                "InputName": "baseline",
                "S3Input": {
                    "S3Uri": f"{props.baseline_uri.rstrip('/')}/code",
                    "LocalPath": f"{BASELINE_INPUT}/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": review.instance_type,
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": props.encryption_key_arn,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
        "Environment": {"PYTHONUNBUFFERED": "1"},
        "Tags": [{"Key": "reviewed-endpoint", "Value": props.endpoint_name}],
    }


class HumanLoopSchedule(Construct):
    """``AWS::Scheduler::Schedule`` that runs the human-loop job on ``human_review.schedule_expression``."""

    def __init__(self, scope: Construct, construct_id: str, props: HumanLoopProps) -> None:
        super().__init__(scope, construct_id)
        expression = props.human_review.schedule_expression
        if expression is None:
            raise ValueError(f"{props.endpoint_name}: the stage's human_review has no schedule_expression")
        stack = Stack.of(self)

        def role_arn(name: str) -> str:
            return stack.format_arn(service="iam", region="", resource="role", resource_name=name)

        request = processing_job_request(props, role_arn(props.job_role_name))
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=human_loop_schedule_name(props.endpoint_name),
            description=f"Human review of {props.endpoint_name}: the last {props.human_review.window_hours}h "
            "of unsure answers to Amazon A2I (model_build/steps/human_loops.py)",
            schedule_expression=expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=UNIVERSAL_TARGET,
                role_arn=role_arn(props.scheduler_role_name),
                input=json.dumps(request),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
                ),
            ),
        )
