"""``python -m pipelines serve [VERSION] [--port 8080] [--host 127.0.0.1]``: the endpoint server in the
foreground: every local endpoint behind SageMaker's runtime API, or one registered VERSION behind
``/invocations`` as its container would serve it."""

from __future__ import annotations

import argparse
import json
import logging
import shlex

from pipelines.commands import UsageError
from pipelines.commands.common import add_listen_options, python_command
from pipelines.local.registry import ModelPackage, ModelRegistry
from pipelines.local.workspace import Workspace

NAME = "serve"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        NAME,
        parents=parents,
        help="In the foreground: the local endpoints (SageMaker's runtime API), or one VERSION (/invocations).",
    )
    serve.add_argument(
        "version", type=int, nargs="?", help="Serve only this registered version, as its container would."
    )
    add_listen_options(serve)


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    # Imported here: the server imports uvicorn, and the handlers it loads import torch.
    from model_deploy.local.host import ServingError
    from model_deploy.local.rollout import default_port
    from model_deploy.local.server import adhoc_state, bind, run_foreground, workspace_state
    from model_deploy.local.state import ServerInfo

    port = default_port() if args.port is None else args.port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    package: ModelPackage | None = None
    if args.version is not None:
        with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
            package = registry.describe(workspace.config.model_package_group_name, args.version)
    elif (running := ServerInfo.read(workspace.endpoints_dir)) is not None:
        raise UsageError(f"the endpoint server of {workspace.root} already runs at {running.url}")
    try:
        sock = bind(args.host, port)  # a busy port is refused before a model is unpacked
    except ServingError as error:
        raise UsageError(str(error)) from None
    try:
        if package is not None:
            archive = workspace.local_path(package.model_data_url)
            print(
                f"Loading {package.group} version {package.version} ({package.approval_status}) from {archive}"
            )
            name = f"{workspace.config.prefix}-version-{package.version}"
            state = adhoc_state(archive, name, package.version)
        else:
            name = ""
            state = workspace_state(workspace)

        def ready(url: str) -> None:
            _print_serving(url, name)

        run_foreground(state, sock, ready)
    except ServingError as error:
        raise UsageError(str(error)) from None
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises Ctrl-C
        pass
    finally:
        sock.close()
    print("Stopped.")
    return 0


def _print_serving(url: str, adhoc_name: str) -> None:
    body = shlex.quote(json.dumps({"features": ["I love this dress, it fits perfectly."]}))
    print(f"Serving at {url} (Ctrl-C or SIGTERM to stop)\n")
    if adhoc_name:
        print(f"  curl {url}/ping")
        print(f"  curl {url}/invocations -H 'Content-Type: application/json' -d {body}")
        print(f"  curl {url}/invocations -H 'Content-Type: text/csv' -H 'Accept: application/jsonlines' \\")
        print("       --data-binary $'Runs small, returned it.\\nPerfect fit!'\n", flush=True)
    else:
        print("  boto3.client('sagemaker-runtime', endpoint_url=URL).invoke_endpoint(EndpointName=..., ...)")
        print(f"  {python_command()} -m pipelines endpoints\n", flush=True)
