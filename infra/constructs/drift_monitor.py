"""The drift monitor's schedule: EventBridge Scheduler starts one SageMaker Processing job per window.

Why a scheduled Processing job and not a SageMaker Monitoring Schedule: a Monitoring Schedule with a custom
analysis needs a custom container image in ECR (its jobs take no code input), which means building and
pushing an image on every change of the job. A Processing job takes the code as an input, so it runs on the
same Hugging Face PyTorch image as the pipeline's steps and installs the same pinned requirements: the job is
``model_build/steps/monitor.py``, exactly the script ``python -m pipelines monitor`` runs locally.

The code comes from the baseline: the evaluation step copies the monitoring scripts into the
``monitoring-baseline/code/`` it writes, so the code that reads a baseline is always the code that wrote it,
and a new model version brings its own. The job's one input is that folder (baseline, tokenizer, code); it
reads the window's capture files from S3 itself, hour by hour (a Processing input would download every
capture ever written). Each run's window ends at the schedule's ``<aws.scheduler.scheduled-time>``, so a
retried run judges the same window, and the job is named after the scheduler's execution id.

The schedule lives in the rendered endpoint stack, since its baseline changes with every version; its roles
are created by the monitoring stack with ``cdk deploy`` (the endpoint stack creates no IAM).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from model_deploy.aws.names import drift_schedule_name, monitor_job_prefix
from model_deploy.stage_config import MonitoringSettings

UNIVERSAL_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
BASELINE_INPUT = "/opt/ml/processing/input/baseline"
OUTPUT = "/opt/ml/processing/output/monitoring"
EXECUTION_ID = "<aws.scheduler.execution-id>"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
MAX_RUNTIME_SECONDS = 3600


@dataclass(frozen=True)
class DriftMonitorProps:
    endpoint_name: str
    monitoring: MonitoringSettings
    baseline_uri: str
    """``s3://.../EvaluateModel/evaluation/monitoring-baseline``: the served version's (with ``code/``)."""
    captures_uri: str
    """``s3://<data bucket>/data-capture/<stage>/<endpoint>``."""
    output_uri: str
    """``s3://<artifacts bucket>/monitoring/<endpoint>``: each job writes ``<output>/<job name>/``."""
    image_uri: str
    job_role_name: str
    scheduler_role_name: str
    metric_namespace: str
    encryption_key_arn: str


def processing_job_request(props: DriftMonitorProps, job_role_arn: str) -> dict[str, Any]:
    """The ``CreateProcessingJob`` request the schedule sends, with the scheduler's context attributes."""
    job_name = f"{monitor_job_prefix(props.endpoint_name)}{EXECUTION_ID}"
    monitoring = props.monitoring
    arguments = [
        "--baseline", BASELINE_INPUT,
        "--captures", props.captures_uri,
        "--endpoint", props.endpoint_name,
        "--window-hours", str(monitoring.window_hours),
        "--until", SCHEDULED_TIME,
        "--thresholds", json.dumps(monitoring.thresholds.as_json(), separators=(",", ":")),
        "--output-data", OUTPUT,
        "--publish-metrics", props.metric_namespace,
        "--no-progress",
    ]  # fmt: skip
    return {
        "ProcessingJobName": job_name,
        "RoleArn": job_role_arn,
        "AppSpecification": {
            "ImageUri": props.image_uri,
            # The requirements pinned for every step, then the job itself with the arguments after "monitor".
            "ContainerEntrypoint": [
                "/bin/bash",
                "-c",
                f"set -e; pip install --quiet -r {BASELINE_INPUT}/code/requirements.txt; "
                f'exec python3 {BASELINE_INPUT}/code/monitor.py "$@"',
                "monitor",
            ],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": [
            {
                "InputName": "baseline",
                "S3Input": {
                    "S3Uri": props.baseline_uri,
                    "LocalPath": BASELINE_INPUT,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "KmsKeyId": props.encryption_key_arn,
            "Outputs": [
                {
                    "OutputName": "monitoring",
                    "S3Output": {
                        "S3Uri": f"{props.output_uri}/{job_name}",
                        "LocalPath": OUTPUT,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": monitoring.instance_type,
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": props.encryption_key_arn,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
        "Environment": {"PYTHONUNBUFFERED": "1"},
        "Tags": [{"Key": "monitored-endpoint", "Value": props.endpoint_name}],
    }


class DriftMonitorSchedule(Construct):
    """``AWS::Scheduler::Schedule`` that runs the monitoring job on ``monitoring.schedule_expression``."""

    def __init__(self, scope: Construct, construct_id: str, props: DriftMonitorProps) -> None:
        super().__init__(scope, construct_id)
        if props.monitoring.schedule_expression is None:
            raise ValueError(f"{props.endpoint_name}: the stage's monitoring has no schedule_expression")
        stack = Stack.of(self)

        def role_arn(name: str) -> str:
            return stack.format_arn(service="iam", region="", resource="role", resource_name=name)

        request = processing_job_request(props, role_arn(props.job_role_name))
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=drift_schedule_name(props.endpoint_name),
            description=f"Drift monitor of {props.endpoint_name}: model_build/steps/monitor.py on the last "
            f"{props.monitoring.window_hours}h of captures",
            schedule_expression=props.monitoring.schedule_expression,
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
