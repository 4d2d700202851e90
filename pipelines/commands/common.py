"""What several commands share: the table printer, the port and parameter options, the SageMaker runner's
lazy import, and the interpreter to suggest in the next command printed."""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_build.parameters import parse_assignments, render, resolve
from model_build.pipeline_spec import PIPELINE
from pipelines.commands import UsageError

SAGEMAKER_RUNNER = "pipelines.runners.sagemaker"
"""Imported only for ``--sagemaker`` and ``definition``: it imports the SageMaker SDK."""
TABLE_WIDTH = 120
"""Columns a table or a wrapped line may take: a terminal beside an editor."""


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], details: Sequence[Sequence[str]] = ()
) -> None:
    """Columns padded to their widest cell; in a table wider than :data:`TABLE_WIDTH` the widest columns
    wrap onto more lines (nothing is cut). ``details``: lines printed under each row, indented."""
    widths = [
        max([len(str(column)), *(len(str(row[i])) for row in rows)]) for i, column in enumerate(columns)
    ]
    while sum(widths) + 2 * (len(widths) - 1) > TABLE_WIDTH and max(widths) > 12:
        widths[widths.index(max(widths))] -= 1
    for index, row in enumerate([columns, *rows]):
        cells = [
            textwrap.wrap(str(cell), width, break_on_hyphens=False) or [""]
            for cell, width in zip(row, widths, strict=True)
        ]
        for line in range(max(len(cell) for cell in cells)):
            parts = [cell[line] if line < len(cell) else "" for cell in cells]
            print("  ".join(part.ljust(width) for part, width in zip(parts, widths, strict=True)).rstrip())
        for detail in details[index - 1] if 0 < index <= len(details) else ():
            print(textwrap.fill(detail, TABLE_WIDTH, initial_indent="    ", subsequent_indent="      "))


def python_command() -> str:
    """The interpreter to type next: ``.venv/bin/python`` after ``make run``, where plain ``python`` lacks the deps."""
    interpreter = Path(sys.executable)
    try:
        return str(interpreter.relative_to(Path.cwd()))
    except ValueError:
        return "python"


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 for any free one."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a TCP port (0-65535; 0 picks a free one)")
    return number


def add_listen_options(parser: argparse.ArgumentParser, host: bool = True) -> None:
    """``--port`` (and ``--host``) of the endpoint server (``serve``, ``endpoints start``)."""
    parser.add_argument(
        "--port",
        type=port,
        default=None,
        help="Port to listen on (default $MLOPS_ENDPOINTS_PORT or 8080; 0: any free).",
    )
    if host:
        parser.add_argument(
            "--host", default="127.0.0.1", help="Loopback address to listen on (default 127.0.0.1)."
        )


def add_parameters(parser: argparse.ArgumentParser) -> None:
    """``--param NAME=VALUE`` (repeatable), named after the shared pipeline description's parameters."""
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"A pipeline parameter; repeatable. Names: {', '.join(PIPELINE.parameter_names)}.",
    )


def parameter_strings(assignments: Sequence[str]) -> dict[str, str]:
    """Checked against the spec's types and ranges (with SageMaker's defaults), then passed on as strings
    (what SageMaker executions take)."""
    values = parse_assignments(PIPELINE, assignments)
    resolve(PIPELINE, values, local=False)
    return {name: render(value) for name, value in values.items()}


def sagemaker_runner() -> Any:
    """:data:`SAGEMAKER_RUNNER`, imported now (it imports the SageMaker SDK), or a usage error without it."""
    try:
        return importlib.import_module(SAGEMAKER_RUNNER)
    except ModuleNotFoundError as error:
        if error.name != SAGEMAKER_RUNNER:
            raise
        raise UsageError(
            "the SageMaker runner (pipelines/runners/sagemaker.py) is not in this checkout; use `run --local`"
        ) from None
