"""Stopping the deploy pipeline's own execution when it has nothing to deploy.

EventBridge may deliver one approval several times, and package events also fire when a version is created
or rejected: without this, every such event would run the pipeline up to the manual gate, where an approver
would find a rollout of what prod already serves. The render action stops its execution instead, with the
reason, which CodePipeline shows on the execution (status ``Stopped``).
"""

from __future__ import annotations

from typing import Any

REASON_LIMIT = 200  # StopPipelineExecution's reason is at most 200 characters.


def stop_execution(codepipeline: Any, pipeline_name: str, execution_id: str, reason: str) -> None:
    """Stop after the running action (``abandon=False``), so the render action itself still succeeds."""
    codepipeline.stop_pipeline_execution(
        pipelineName=pipeline_name,
        pipelineExecutionId=execution_id,
        abandon=False,
        reason=reason[:REASON_LIMIT],
    )
