"""``python -m pipelines predict "A review" ... [--endpoint staging|prod]``: reviews sent to a local endpoint;
with ``--input FILE --output FILE [--version N]`` a whole CSV scored in batches
(:mod:`pipelines.commands.batch_predict`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.commands import UsageError
from pipelines.commands.common import python_command
from pipelines.local.workspace import Workspace

NAME = "predict"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    predict = subparsers.add_parser(
        NAME,
        parents=parents,
        help="The sentiment of reviews: from an endpoint, or a whole CSV file scored in batches (--input).",
    )
    predict.add_argument("text", nargs="*", help="One or more reviews (or --input FILE).")
    predict.add_argument(
        "--endpoint",
        help="A stage (staging, prod) or an endpoint name (default: prod if it serves, else staging).",
    )
    predict.add_argument("--input", type=Path, help="A CSV of reviews to score, streamed in batches.")
    predict.add_argument("--output", type=Path, help="With --input: the scored CSV (every input row kept).")
    predict.add_argument(
        "--version", type=int, help="With --input: score with this registered version, in this process."
    )
    predict.add_argument("--text-column", default="Review Text", help="With --input (default: %(default)s).")
    predict.add_argument("--id-column", help="With --input: a column that must be there (it is kept).")
    predict.add_argument(
        "--batch-size", type=int, default=64, help="With --input: reviews per model call (default: 64)."
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    if args.input is not None or args.output is not None or args.version is not None:
        from pipelines.commands.batch_predict import predict_file

        if args.text:
            flags = {"--input": args.input, "--output": args.output, "--version": args.version}
            given = ", ".join(flag for flag, value in flags.items() if value is not None)
            raise UsageError(
                f"reviews on the command line go to an endpoint, and {given} score a file "
                "(--input FILE --output FILE [--version N]): give one or the other"
            )
        return predict_file(args, workspace, endpoint_name)
    if not args.text:
        raise UsageError("give one or more reviews, or --input FILE --output FILE --version N")
    from model_deploy.local.rollout import RolloutError, invoke_reviews
    from model_deploy.local.state import EndpointStore, ServerInfo
    from model_deploy.stage_config import STAGES

    if ServerInfo.read(workspace.endpoints_dir) is None:
        raise UsageError(f"no endpoint server runs: `{python_command()} -m pipelines endpoints start`")
    records = EndpointStore(workspace.endpoints_dir).load()
    name = endpoint_name(args.endpoint, workspace)
    stage = next((s for s in STAGES if workspace.config.endpoint_name(s) == name), None)
    if stage is not None and (name not in records or records[name].version is None):
        how = (
            f"promote staging first: `{python_command()} -m pipelines endpoints promote`"
            if stage != STAGES[0]
            else f"approve a version first: `{python_command()} -m pipelines registry approve N`"
        )
        raise UsageError(f"{stage} ({name}) serves nothing yet: {how}")
    try:
        results, variant = invoke_reviews(workspace, name, args.text)
    except RolloutError as error:
        raise UsageError(str(error)) from None
    for text, result in zip(args.text, results, strict=True):
        print(f"{result['sentiment']:<8} {result['probability']:.2f}  {text}")
    version = records[name].version if name in records else "?"
    print(f"(answered by {name}, version {version}, variant {variant})")
    return 0


def endpoint_name(endpoint: str | None, workspace: Workspace) -> str:
    """A stage or an endpoint name; none: prod if it serves a version, else staging."""
    from model_deploy.local.state import EndpointStore
    from model_deploy.stage_config import STAGES

    if endpoint:
        return workspace.config.endpoint_name(endpoint) if endpoint in STAGES else endpoint
    records = EndpointStore(workspace.endpoints_dir).load()
    serving = [workspace.config.endpoint_name(s) for s in reversed(STAGES)]
    return next((n for n in serving if records.get(n) and records[n].version), serving[-1])
