"""The commands of ``python -m pipelines``, one module each (:mod:`pipelines.cli` builds the parser from them
and dispatches to the one named); what several share is in :mod:`pipelines.commands.common`.

Each module is a :class:`Command`: its ``NAME``, ``register(subparsers, parents)`` adding its parser (with
``parents``: the ``--run-dir`` option, so it may come after the command too) and ``run(args, workspace)``
returning the exit status. A module imports what only its work needs (uvicorn, torch, the SageMaker SDK)
inside ``run``, so that building the parser stays cheap and the local mode never imports ``sagemaker``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pipelines.local.workspace import Workspace


class UsageError(Exception):
    """Bad input from the command line: printed without a traceback, exit status 2."""


class Command(Protocol):
    """A command module (``pipelines/commands/<name>.py``)."""

    NAME: str

    def register(
        self, subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
    ) -> None:
        """Add the command's parser (and its actions' parsers) to ``subparsers``."""

    def run(self, args: argparse.Namespace, workspace: Workspace) -> int:
        """Do the command; the exit status (errors it raises are :mod:`pipelines.cli`'s to print)."""
