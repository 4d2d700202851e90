"""``python -m pipelines ui [--port 8765]``: the local web page (:mod:`pipelines.ui`) in the foreground."""

from __future__ import annotations

import argparse

from pipelines.commands.common import port
from pipelines.local.workspace import Workspace

NAME = "ui"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    ui = subparsers.add_parser(
        NAME, parents=parents, help="A local web page: executions, the registry, endpoints, features."
    )
    ui.add_argument(
        "--port",
        type=port,
        default=None,
        help="Port on 127.0.0.1 (default $MLOPS_UI_PORT or 8765; 0: any free).",
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    from pipelines.ui.server import run_ui  # uvicorn and Starlette, imported only to serve the page

    return run_ui(workspace, args.port)
