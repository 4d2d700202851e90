"""``python -m pipelines experiments``: MLflow's own UI over the run folder's runs, on 127.0.0.1.

Comparing runs is MLflow's page: the runs table, "Compare" on the selected runs (parameters side by side, the
per-epoch curves overlaid), each run's pictures and reports. The command starts ``mlflow server`` for the run
folder's store (:mod:`pipelines.local.mlflow_ui`) and stays in the foreground; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from pipelines.local import mlflow_ui
from pipelines.local.workspace import Workspace

NAME = "experiments"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        NAME,
        parents=parents,
        help="MLflow's UI on 127.0.0.1: every execution is a run; compare parameters and curves.",
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"Port (default ${mlflow_ui.PORT_VARIABLE} or 5000)."
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    if not (workspace.mlflow_dir / "mlflow.db").is_file():
        print(
            f"No MLflow runs in {workspace.mlflow_dir} yet: `python -m pipelines run --local` logs one per "
            "execution.",
            file=sys.stderr,
        )
        return 2
    listen_port = args.port or mlflow_ui.port()
    print(
        f"MLflow UI on http://{mlflow_ui.HOST}:{listen_port} (tracking store {workspace.mlflow_tracking_uri}); "
        "Ctrl-C stops it"
    )
    try:
        return subprocess.run(mlflow_ui.server_command(workspace, listen_port), check=False).returncode
    except KeyboardInterrupt:
        return 0
