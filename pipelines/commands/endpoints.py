"""``python -m pipelines endpoints [list] | start [--port N] | stop | status | promote | deploy [--version N]``:
the local staging and prod endpoints that approvals roll out to, and their background server.

Exit status: ``status`` says 3 when no server runs and 1 when it does not answer; ``promote`` and ``deploy``
say 1 when the rollout failed.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from pipelines.commands import UsageError
from pipelines.commands.common import add_listen_options, print_table, python_command
from pipelines.local.workspace import Workspace

NAME = "endpoints"
EXIT_NOT_RUNNING = 3
REASON_WIDTH = 200
"""Characters of a rollout's reason the listing shows; the whole text stays in ``endpoints.json``."""


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    endpoints = subparsers.add_parser(
        NAME,
        parents=parents,
        help="The local staging and prod endpoints that approvals roll out to.",
    )
    actions = endpoints.add_subparsers(dest="endpoints_command", metavar="ACTION")
    actions.add_parser("list", parents=parents, help="Each endpoint, its version and history.")
    start = actions.add_parser("start", parents=parents, help="Start the server in the background.")
    add_listen_options(start, host=False)
    actions.add_parser("stop", parents=parents, help="Stop the background server.")
    actions.add_parser("status", parents=parents, help="Whether the server runs, and where.")
    actions.add_parser(
        "promote", parents=parents, help="The manual gate: roll what staging serves out to prod."
    )
    deploy = actions.add_parser(
        "deploy",
        parents=parents,
        help="Roll the newest approved version that has not failed on staging out to it (after a missed "
        "rollout); --version N retries one that failed.",
    )
    deploy.add_argument("--version", type=int, help="This approved version, even if it failed before.")


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    from model_deploy.local.rollout import (
        STAGES,
        RolloutError,
        RolloutFailed,
        raise_if_failed,
        roll_out,
        stop_server,
    )

    try:
        match args.endpoints_command:
            case "start":
                _start(workspace, args.port)
            case "stop":
                stopped = stop_server(workspace)
                print(
                    f"Stopped the endpoint server (pid {stopped.pid})."
                    if stopped
                    else "No endpoint server runs."
                )
            case "status":
                return _status(workspace)
            case "promote":
                result = raise_if_failed(roll_out(workspace, STAGES[1]))
                return 0 if result.outcome in ("Deployed", "Unchanged") else 1
            case "deploy":
                result = raise_if_failed(roll_out(workspace, STAGES[0], version=args.version))
                return 0 if result.outcome in ("Deployed", "Unchanged") else 1
            case _:
                _list(workspace)
    except RolloutFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except RolloutError as error:
        raise UsageError(str(error)) from None
    return 0


def _start(workspace: Workspace, port: int | None) -> None:
    from model_deploy.local.rollout import start_server
    from model_deploy.local.state import ServerInfo

    running = ServerInfo.read(workspace.endpoints_dir)
    if running is not None and port not in (None, 0, urlsplit(running.url).port):
        raise UsageError(
            f"the endpoint server already runs at {running.url} (pid {running.pid}), not on port "
            f"{port}: `{python_command()} -m pipelines endpoints stop` first to move it"
        )
    info = start_server(workspace, port)
    print(f"The endpoint server runs at {info.url} (pid {info.pid}).")


def _status(workspace: Workspace) -> int:
    from model_deploy.local.rollout import responds
    from model_deploy.local.state import ServerInfo

    running = ServerInfo.read(workspace.endpoints_dir)
    if running is None:
        print("No endpoint server runs.")
        return EXIT_NOT_RUNNING
    if not responds(running.url):
        print(f"The endpoint server (pid {running.pid}) does not answer at {running.url}; see its log.")
        return 1
    print(f"The endpoint server runs at {running.url} (pid {running.pid}).")
    return 0


def _list(workspace: Workspace) -> None:
    from model_deploy.local.rollout import describe_endpoints

    described, info = describe_endpoints(workspace)
    if not described:
        print("No endpoints yet: approve a version (`registry approve N`) to roll it out to staging.")
        return
    print_table(
        ["endpoint", "status", "version", "url"],
        [[e["EndpointName"], e["EndpointStatus"], str(e["Version"] or "-"), e["Url"]] for e in described],
    )
    for endpoint in described:
        print(f"\n{endpoint['EndpointName']} history:")
        for entry in endpoint["History"] or [{"time": "", "outcome": "(none)", "version": "", "reason": ""}]:
            reason = f"  {_one_line(entry['reason'])}" if entry.get("reason") else ""
            print(f"  {entry['time']}  {entry['outcome']:<10} version {entry['version']!s:<4}{reason}")
        failure = endpoint.get("FailureReason")
        history = endpoint["History"] or []
        if failure and not (history and history[-1].get("reason") == failure):
            print(f"  last failure: {_one_line(failure)}")
    if info is None:
        print(f"\nThe endpoint server is stopped: `{python_command()} -m pipelines endpoints start`.")


def _one_line(text: str, limit: int = REASON_WIDTH) -> str:
    """A reason on one line of the listing; the whole text stays in endpoints.json."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
