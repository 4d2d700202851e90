"""``python -m pipelines predict --input reviews.csv --output scored.csv --version N``: a whole file scored.

With ``--version`` the registered version's archive is loaded in this process through its own handler (what
a SageMaker Batch Transform of it runs); with ``--endpoint`` (or neither, when the local endpoint server
runs) the batches go to that endpoint through the runtime API. Either way :mod:`model_deploy.batch_scoring`
streams the file, keeps every row and counts the rows it could not score, by reason.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from model_deploy.batch_scoring import (
    Scorer,
    endpoint_scorer,
    load_version,
    score_file,
    summary_lines,
)
from pipelines.commands import UsageError
from pipelines.local.registry import ModelRegistry, RegistryError
from pipelines.local.workspace import Workspace


def predict_file(
    args: argparse.Namespace, workspace: Workspace, endpoint_name: Callable[[str | None, Workspace], str]
) -> int:
    """Exit status 0 when the file was scored (unscorable rows included: they are reported, not fatal)."""
    if args.input is None or args.output is None:
        raise UsageError("batch scoring needs both --input FILE and --output FILE")
    if args.version is not None and args.endpoint:
        raise UsageError("--version scores in this process, --endpoint through an endpoint: give one")
    if not args.input.is_file():
        raise UsageError(f"--input {args.input}: no such file")
    if args.output.resolve() == args.input.resolve():
        raise UsageError("--output must not be the --input file")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: expected 1 or more")
    with tempfile.TemporaryDirectory(prefix="batch-predict-") as work_dir:
        score, source = _scorer(args, workspace, endpoint_name, Path(work_dir))
        print(f"Scoring {args.input} with {source}")
        try:
            result = score_file(
                args.input,
                args.output,
                score,
                text_column=args.text_column,
                id_column=args.id_column,
                batch_size=args.batch_size,
            )
        except ValueError as error:
            raise UsageError(str(error)) from None
    print("\n".join(summary_lines(result, args.output)))
    return 0


def _scorer(
    args: argparse.Namespace,
    workspace: Workspace,
    endpoint_name: Callable[[str | None, Workspace], str],
    work_dir: Path,
) -> tuple[Scorer, str]:
    if args.version is not None:
        from model_deploy.local.host import ServingError

        try:
            with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
                package = registry.describe(workspace.config.model_package_group_name, args.version)
        except RegistryError as error:
            raise UsageError(str(error)) from None
        archive = workspace.local_path(package.model_data_url)
        try:
            score = load_version(archive, work_dir)
        except ServingError as error:
            raise UsageError(f"version {package.version}: {error}") from None
        return score, f"{package.group} version {package.version} ({package.approval_status}), in process"

    from model_deploy.local.rollout import runtime_client
    from model_deploy.local.state import EndpointStore, ServerInfo

    info = ServerInfo.read(workspace.endpoints_dir)
    if info is None:
        raise UsageError("give --version N to score in this process, or start the endpoint server first")
    name = endpoint_name(args.endpoint, workspace)
    serving = {n: r for n, r in EndpointStore(workspace.endpoints_dir).load().items() if r.version}
    if name not in serving:
        known = ", ".join(f"{n} (version {r.version})" for n, r in serving.items()) or "none yet"
        raise UsageError(f"endpoint {name} serves no version; endpoints that do: {known}")
    return endpoint_scorer(runtime_client(info.url, workspace.config.region), name), f"endpoint {name}"
