"""Starts the build pipeline (retraining) when a drift alarm goes into ALARM, at most once per cool-down.

EventBridge delivers the alarm's state change; this function starts the build CodePipeline unless one of its
executions started within ``COOLDOWN_HOURS`` (whatever started it: a push, the retraining schedule, an
earlier drift), and says on the SNS topic what it did and why. Inlined into the monitoring stack: standard
library and boto3 only, which the Lambda runtime has.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3


def decide(codepipeline: Any, pipeline: str, cooldown: timedelta, now: datetime) -> tuple[bool, str]:
    """(start?, why): the latest execution of ``pipeline`` and when it started decide."""
    executions = codepipeline.list_pipeline_executions(pipelineName=pipeline, maxResults=1).get(
        "pipelineExecutionSummaries", []
    )
    if executions:
        latest = executions[0]
        started = latest["startTime"]
        if now - started < cooldown:
            return False, (
                f"not started: execution {latest['pipelineExecutionId']} ({latest['status']}) started at "
                f"{started.isoformat(timespec='minutes')}, within the {cooldown} cool-down"
            )
    return True, "started"


def handler(event: dict[str, Any], context: Any, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    clients = clients or {"codepipeline": boto3.client("codepipeline"), "sns": boto3.client("sns")}
    pipeline = os.environ["PIPELINE_NAME"]
    cooldown = timedelta(hours=int(os.environ["COOLDOWN_HOURS"]))
    detail = event.get("detail", {})
    alarm = detail.get("alarmName", "?")
    reason = detail.get("state", {}).get("reason", "")
    start, outcome = decide(clients["codepipeline"], pipeline, cooldown, datetime.now(UTC))
    if start:
        token = (
            {"clientRequestToken": str(event["id"])[:128]} if event.get("id") else {}
        )  # EventBridge retries
        execution = clients["codepipeline"].start_pipeline_execution(name=pipeline, **token)
        outcome = f"started execution {execution['pipelineExecutionId']}"
    message = f"{alarm}: persistent drift. Retraining with {pipeline}: {outcome}.\n\n{reason}"
    clients["sns"].publish(
        TopicArn=os.environ["TOPIC_ARN"],
        Subject=f"Drift on {alarm}: retraining {outcome.split(':')[0]}"[:99],
        Message=message,
    )
    print(json.dumps({"alarm": alarm, "pipeline": pipeline, "outcome": outcome}))
    return {"started": start, "outcome": outcome}
