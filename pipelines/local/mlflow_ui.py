"""MLflow's own UI over the run folder's tracking store, on loopback: where it listens and how it is started.

Every local execution is an MLflow run of the experiment named after the pipeline (the runner logs into
``<run folder>/mlflow/``: ``mlflow.db``, SQLite, and ``artifacts/``). ``pipelines experiments`` starts
:func:`server_command`; the web page and ``registry describe`` link each execution to :func:`run_url`.
"""

from __future__ import annotations

import os
import sys

from pipelines.local.workspace import Workspace

PORT_VARIABLE = "MLOPS_MLFLOW_PORT"
DEFAULT_PORT = 5000
HOST = "127.0.0.1"


def port() -> int:
    """Where the UI listens (and where the links point): ``$MLOPS_MLFLOW_PORT`` or 5000."""
    value = os.environ.get(PORT_VARIABLE, "")
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 0 < int(value) <= 65535:
        raise ValueError(f"{PORT_VARIABLE}={value!r} is not a TCP port (1-65535)")
    return int(value)


def run_url(run_id: str, listen_port: int | None = None) -> str:
    """The MLflow UI's page of one run (its ``/runs/<id>`` route finds the run's experiment)."""
    return f"http://{HOST}:{listen_port or port()}/#/runs/{run_id}"


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
