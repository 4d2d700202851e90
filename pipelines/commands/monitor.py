"""``python -m pipelines monitor [--endpoint prod] [--since 2h] [--until ..] [--retrain-on-drift]``: an
endpoint's captured traffic judged against its model's baseline (:mod:`model_deploy.local.monitoring`)."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.local.workspace import Workspace

NAME = "monitor"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    monitor = subparsers.add_parser(
        NAME,
        parents=parents,
        help="Judge an endpoint's captured traffic against its model's baseline.",
    )
    monitor.add_argument("--endpoint", help="A stage (staging, prod) or an endpoint name (default: prod).")
    monitor.add_argument("--since", help="Start of the window: ISO-8601 or an age (30m, 2h, 1d).")
    monitor.add_argument("--until", help="End of the window (default: now).")
    monitor.add_argument(
        "--retrain-on-drift", action="store_true", help="Start a local pipeline run if the verdict is drift."
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    from model_deploy.local.monitoring import command
    from model_deploy.local.rollout import on_model_package_event
    from pipelines.runners.local import LocalRunner

    def start_pipeline(overrides: dict[str, Any]) -> Any:
        """The retraining a drift verdict starts: a local run whose approval rolls out, as ``run``'s does."""
        return LocalRunner(workspace, subscribers=[on_model_package_event]).run(overrides)

    retrain = start_pipeline if args.retrain_on_drift else None
    return command(workspace, args.endpoint, args.since, args.until, retrain)
