"""``python -m pipelines definition [--param NAME=VALUE ...]``: the SageMaker pipeline definition JSON, from
the SageMaker runner (the only local command that imports the SageMaker SDK)."""

from __future__ import annotations

import argparse

from pipelines.commands.common import add_parameters, parameter_strings, sagemaker_runner
from pipelines.local.workspace import Workspace

NAME = "definition"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    definition = subparsers.add_parser(NAME, parents=parents, help="The SageMaker pipeline definition JSON.")
    add_parameters(definition)


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    print(sagemaker_runner().definition_json(parameter_strings(args.param)))
    return 0
