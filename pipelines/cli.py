"""``python -m pipelines``: run the model-build pipeline, locally or on SageMaker, and look at what it made.

    python -m pipelines run --local [--param Epochs=2 ...] [--input reviews.csv]
    python -m pipelines run --sagemaker [--wait] [--param ...]
    python -m pipelines executions [ID]
    python -m pipelines features query "SELECT sentiment, count(*) FROM reviews GROUP BY 1"
    python -m pipelines features get REVIEW_ID | features delete REVIEW_ID
    python -m pipelines registry list | describe VERSION | approve VERSION [--note ..] | reject VERSION
    python -m pipelines endpoints [list] | start [--port 8080] | stop | status | promote
    python -m pipelines predict "A review" [--endpoint staging|prod]
    python -m pipelines predict --input reviews.csv --output scored.csv --version N | --endpoint STAGE
    python -m pipelines serve [VERSION] [--port 8080]
    python -m pipelines ui [--port 8765]
    python -m pipelines monitor [--endpoint prod] [--since 2h] [--retrain-on-drift]
    python -m pipelines definition [--param ...]

The local commands share one run folder: ``--run-dir``, else ``$MLOPS_RUN_DIR``, else ``.mlops/``.
Nothing here imports ``sagemaker`` unless ``--sagemaker`` or ``definition`` asks for it.

Each command is a module of :mod:`pipelines.commands`; this one builds the parser from :data:`COMMANDS` and
turns the errors a command raises into exit statuses: 2 for bad input (and a missing AWS setup), 0 when the
reader of the output has gone (``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_build.aws_setup import aws_setup_problem
from model_build.parameters import ParameterError
from pipelines.commands import (
    Command,
    UsageError,
    definition,
    endpoints,
    executions,
    experiments,
    features,
    monitor,
    predict,
    registry,
    review,
    run,
    serve,
    ui,
)
from pipelines.local.executions import ExecutionNotFound
from pipelines.local.feature_store import FeatureStoreError
from pipelines.local.registry import RegistryError
from pipelines.local.workspace import Workspace, default_run_dir

COMMANDS: tuple[Command, ...] = (
    run,
    executions,
    features,
    registry,
    serve,
    endpoints,
    predict,
    ui,
    monitor,
    review,
    experiments,
    definition,
)
"""In the order ``--help`` lists them."""
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    def run_dir_option(default: Any) -> argparse.ArgumentParser:
        options = argparse.ArgumentParser(add_help=False)
        options.add_argument(
            "--run-dir",
            type=Path,
            default=default,
            help=f"The local mode's folder (default: $MLOPS_RUN_DIR or {default_run_dir()}).",
        )
        return options

    parser = argparse.ArgumentParser(
        prog="python -m pipelines", description=__doc__.split("\n\n")[0], parents=[run_dir_option(None)]
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Before or after the command: a command's own default must not overwrite the one given before it.
    parents = [run_dir_option(argparse.SUPPRESS)]
    for command in COMMANDS:
        command.register(subparsers, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {command.NAME: command for command in COMMANDS}[args.command]
    try:
        return command.run(args, Workspace.open(args.run_dir))
    except (
        UsageError,
        ParameterError,
        RegistryError,
        FeatureStoreError,
        ExecutionNotFound,
        ValueError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `... | head`: the reader has gone, which is no error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush stays quiet
        return 0
    except Exception as error:  # botocore's, from `definition` and `run --sagemaker`
        problem = aws_setup_problem(error)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
