"""``python -m pipelines experiments``: MLflow's own UI over the run folder's tracking store, on loopback.

Every local execution is an MLflow run of the experiment named after the pipeline (the runner logs into
``<run folder>/mlflow/``: ``mlflow.db``, SQLite, and ``artifacts/``), so comparing runs is MLflow's page: the
runs table, "Compare" on the selected runs (parameters side by side, the per-epoch curves overlaid), each
run's pictures and reports. The command starts ``mlflow server`` on 127.0.0.1 for that store and stays in the
foreground (Ctrl-C stops it); the web page (``pipelines ui``) links each execution to :func:`run_url`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from pipelines.local.workspace import Workspace

PORT_VARIABLE = "MLOPS_MLFLOW_PORT"
DEFAULT_PORT = 5000
HOST = "127.0.0.1"


def port() -> int:
    """Where the UI listens (and where the page's links point): ``$MLOPS_MLFLOW_PORT`` or 5000."""
    value = os.environ.get(PORT_VARIABLE, "")
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 0 < int(value) <= 65535:
        raise ValueError(f"{PORT_VARIABLE}={value!r} is not a TCP port (1-65535)")
    return int(value)


def run_url(run_id: str, listen_port: int | None = None) -> str:
    """The MLflow UI's page of one run (its ``/runs/<id>`` route finds the run's experiment)."""
    return f"http://{HOST}:{listen_port or port()}/#/runs/{run_id}"


def add_parser(commands: argparse._SubParsersAction, run_dir: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "experiments",
        parents=[run_dir],
        help="MLflow's UI on 127.0.0.1: every execution is a run; compare parameters and curves.",
    )
    parser.add_argument("--port", type=int, default=None, help=f"Port (default ${PORT_VARIABLE} or 5000).")


def server_command(workspace: Workspace, listen_port: int) -> list[str]:
    """``mlflow server`` for the run folder's store, serving its artifacts, on loopback only."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        workspace.mlflow_tracking_uri,
        "--default-artifact-root",
        workspace.mlflow_artifacts_uri,
        "--host",
        HOST,
        "--port",
        str(listen_port),
        "--workers",
        "1",
    ]


def command(args: argparse.Namespace, workspace: Workspace) -> int:
    if not (workspace.mlflow_dir / "mlflow.db").is_file():
        print(
            f"No MLflow runs in {workspace.mlflow_dir} yet: `python -m pipelines run --local` logs one per "
            "execution.",
            file=sys.stderr,
        )
        return 2
    listen_port = args.port or port()
    print(
        f"MLflow UI on http://{HOST}:{listen_port} (tracking store {workspace.mlflow_tracking_uri}); Ctrl-C stops"
    )
    try:
        return subprocess.run(server_command(workspace, listen_port), check=False).returncode
    except KeyboardInterrupt:
        return 0
