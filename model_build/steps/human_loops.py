"""The scheduled human-loop job: the capture window's unsure answers -> Amazon A2I human loops.

EventBridge Scheduler starts it as a SageMaker Processing job on the stage's ``human_review`` schedule, as it
starts the drift monitor (``infra/constructs/human_loop_schedule.py``), with the code from the served
version's monitoring baseline (``<baseline>/code/human_loops.py``: the evaluation step copies it there with
``monitor.py``). It reads the window's captures from S3 hour by hour with the monitoring job's reader, picks
the reviews by the rule the local queue uses (``review_rule.read_captures``), makes sure the stage's flow
definition exists (``review_rule.ensure_flow_definition``: the deploy pipeline renders its request), and
starts one human loop per review, named after the review's key, so a retried run over the same window starts
nothing twice. Unreadable capture lines are listed, never fatal: they are the drift monitor's to count.

``python3 human_loops.py --captures s3://... --endpoint NAME --until TIME --window-hours 1
--confidence-threshold 0.6 --sample-share 0.02 --flow-definition '{"FlowDefinitionName": ...}'``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import capture_window
import review_rule

ACTIVE_WAIT_SECONDS = 300
"""How long a run waits for a flow definition it has just created to become Active (a minute, usually)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", required=True, help="s3://<data bucket>/<capture prefix>/<endpoint>")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--until", help="end of the window (ISO-8601; default: now)")
    parser.add_argument("--window-hours", type=int, default=1)
    parser.add_argument("--confidence-threshold", type=float, required=True)
    parser.add_argument("--sample-share", type=float, required=True)
    parser.add_argument("--flow-definition", required=True, help="the CreateFlowDefinition request (JSON)")
    args = parser.parse_args(argv)
    if args.window_hours < 1:
        parser.error(f"--window-hours must be at least 1, not {args.window_hours}")
    try:
        args.flow_definition = json.loads(args.flow_definition)
    except json.JSONDecodeError as error:
        parser.error(f"--flow-definition is not JSON: {error}")
    return args


def wait_active(sagemaker: Any, name: str, timeout: float = ACTIVE_WAIT_SECONDS) -> None:
    """Wait until the flow definition is Active: StartHumanLoop refuses one that is still initializing."""
    deadline = time.monotonic() + timeout
    while True:
        status = sagemaker.describe_flow_definition(FlowDefinitionName=name)["FlowDefinitionStatus"]
        if status == "Active":
            return
        if status == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(f"flow definition {name} is {status} after {timeout:.0f} s: no loop started")
        time.sleep(10)


def run(args: argparse.Namespace, sagemaker: Any, a2i: Any, s3: Any) -> dict[str, Any]:
    """One run over the window; returns what it did (printed as JSON by :func:`main`)."""
    now = datetime.now(UTC)
    until = capture_window.parse_time(args.until, now) if args.until else now
    since = until - timedelta(hours=args.window_hours)
    arn, created = review_rule.ensure_flow_definition(sagemaker, args.flow_definition)
    if created:
        wait_active(sagemaker, args.flow_definition["FlowDefinitionName"])
    candidates, read = review_rule.read_captures(
        capture_window.S3Captures(args.captures, s3),
        args.endpoint,
        args.confidence_threshold,
        args.sample_share,
        since,
        until,
    )
    started = review_rule.start_human_loops(a2i, arn, candidates)
    return {
        "endpoint": args.endpoint,
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "flow_definition": {"arn": arn, "created": created},
        "lines": read.lines,
        "reviews": read.reviews,
        "candidates": read.candidates,
        "started": len(started.started),
        "started_before": len(started.already),
        "unreadable": read.unreadable,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import boto3

    report = run(args, boto3.client("sagemaker"), boto3.client("sagemaker-a2i-runtime"), boto3.client("s3"))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
