"""Serving the page: uvicorn on a loopback socket, in the foreground, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

import uvicorn

from model_deploy.local.host import ServingError
from model_deploy.local.server import bind, url_of
from pipelines.local.query_limits import RunningQueries
from pipelines.local.workspace import Workspace
from pipelines.ui.app import create_app

HOST = "127.0.0.1"
"""Loopback only: the page can approve versions, and it has no login."""
PORT_ENV = "MLOPS_UI_PORT"
DEFAULT_PORT = 8765


def default_port() -> int:
    value = os.environ.get(PORT_ENV, str(DEFAULT_PORT))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{PORT_ENV}={value!r} is not a port number") from None


class PageServer(uvicorn.Server):
    """uvicorn, stopping the page's running SQL queries as soon as it starts shutting down: otherwise it waits
    for them (``timeout_graceful_shutdown``), cancels their requests, and the process still cannot exit until
    the worker threads running them end."""

    def __init__(self, config: uvicorn.Config, queries: RunningQueries) -> None:
        super().__init__(config)
        self.queries = queries

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.queries.stop_all()
        await super().shutdown(sockets)


def page_server(workspace: Workspace, on_ready: Callable[[], None] | None = None) -> PageServer:
    app = create_app(workspace, on_ready=on_ready)
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=5
    )
    return PageServer(config, app.state.queries)


def serve(workspace: Workspace, port: int, on_ready: Callable[[str], None]) -> None:
    """Bind first (port 0 picks a free one), so the URL printed is the one that answers; the socket listens
    before the app starts, so a browser opened on ``on_ready`` waits in its backlog rather than failing."""
    sock = bind(HOST, port)
    url = url_of(sock)
    server = page_server(workspace, on_ready=lambda: on_ready(url))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def run_ui(workspace: Workspace, port: int | None) -> int:
    """``python -m pipelines ui``: serve until Ctrl-C, printing where."""

    def ready(url: str) -> None:
        print(f"The page for {workspace.root} is at {url} (Ctrl-C to stop)", flush=True)

    try:
        serve(workspace, default_port() if port is None else port, ready)
    except ServingError as error:  # the port is taken, or not a loopback one
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    print("Stopped.")
    return 0
