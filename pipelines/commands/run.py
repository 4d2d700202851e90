"""``python -m pipelines run [--local | --sagemaker [--wait]] [--param NAME=VALUE ...] [--input PATH]``.

Locally the :class:`~pipelines.runners.local.LocalRunner` runs the pipeline in this process and the new
version's approval rolls out through the local endpoints (the CLI subscribes the rollout); ``--sagemaker``
starts an execution of the pipeline on SageMaker (its runner, and so the SageMaker SDK, imported only then).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from model_build.parameters import parse_assignments
from model_build.pipeline_spec import PIPELINE, ParameterValue, RegisterStep
from pipelines.commands import UsageError
from pipelines.commands.common import (
    add_parameters,
    parameter_strings,
    python_command,
    sagemaker_runner,
)
from pipelines.commands.registry import data_check_line, metrics_line
from pipelines.local.executions import ExecutionRecord, Status
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace

NAME = "run"
INPUT_PARAMETER = "InputDataUrl"
EXIT_INTERRUPTED = 130


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(NAME, parents=parents, help="Run the model-build pipeline.")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="On this machine (the default).")
    where.add_argument("--sagemaker", action="store_true", help="As a SageMaker pipeline execution.")
    run.add_argument("--wait", action="store_true", help="With --sagemaker: follow the execution to its end.")
    add_parameters(run)
    run.add_argument(
        "--input", help=f"Shortcut for --param {INPUT_PARAMETER}=PATH (a CSV file, folder or s3:// URI)."
    )
    run.add_argument(
        "--no-cache", action="store_true", help="Run every step, even those with cached outputs."
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    assignments = list(args.param) + ([f"{INPUT_PARAMETER}={args.input}"] if args.input else [])
    if args.sagemaker:
        overrides = parameter_strings(assignments)
        if (url := overrides.get(INPUT_PARAMETER)) and not url.startswith("s3://"):
            raise UsageError(f"on SageMaker, {INPUT_PARAMETER} must be an s3:// URI, not {url!r}")
        return sagemaker_runner().run_on_sagemaker(overrides, args.wait)

    from pipelines.runners.local import LocalRunner  # imports the runner's dependencies only when running

    values = parse_assignments(PIPELINE, assignments)
    values = {name: _absolute_if_local_path(value) for name, value in values.items()}
    from model_deploy.local.rollout import on_model_package_event

    runner = LocalRunner(workspace, use_cache=not args.no_cache, subscribers=[on_model_package_event])
    try:
        record = runner.run(values)
    except KeyboardInterrupt:
        print(
            "\nInterrupted: the execution is marked Failed; run again to resume from the cache.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BaseException as error:
        if type(error).__name__ == "Interrupted":
            print(f"\nStopped by {error}: the execution is marked Failed.", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    print()
    if record.status == Status.SUCCEEDED:
        _print_registered(record, workspace)
        return 0
    print(f"Execution {record.id} failed: {record.failure_reason}")
    print(f"\nDetails and logs: python -m pipelines executions {record.id}")
    return 1


def _absolute_if_local_path(value: ParameterValue) -> ParameterValue:
    """A relative path given on the command line means one relative to where the command runs."""
    if isinstance(value, str) and value and not value.startswith("s3://") and Path(value).exists():
        return str(Path(value).resolve())
    return value


def _print_registered(record: ExecutionRecord, workspace: Workspace) -> None:
    register_step = next(step for step in record.steps if step.type == RegisterStep.kind)
    version = register_step.detail["ModelPackageVersion"]
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        package = registry.describe(workspace.config.model_package_group_name, version)
    print(f"Registered {package.group} version {package.version}: {package.approval_status}")
    print(f"  {package.arn}")
    print(f"  metrics     {metrics_line(package)}")
    if (champion := package.champion()) is not None:
        print(f"  champion    {champion['message']}")
    print(f"  data check  {data_check_line(package)}")
    print(f"  model       {workspace.local_path(package.model_data_url)}")
    for picture in record.pictures(workspace):
        print(f"  picture     {picture}")
    logs = Path(register_step.log).parent if register_step.log else workspace.executions_dir / record.id
    print(f"  logs        {logs}")
    cli = f"{python_command()} -m pipelines"
    query = shlex.quote("SELECT sentiment, count(*) FROM reviews GROUP BY 1")
    print("\nNext:")
    print(f"  {cli} executions {record.id}")
    print(f"  {cli} registry approve {package.version} --note 'checked the confusion matrix'")
    print(f"  {cli} features query {query}")
    print(f"  {cli} registry list")
