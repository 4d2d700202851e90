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
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from model_build.aws_setup import aws_setup_problem
from model_build.parameters import ParameterError, parse_assignments, render, resolve, shown
from model_build.pipeline_spec import PIPELINE, ParameterValue, RegisterStep, retry_policy_text
from pipelines.commands import UsageError, experiments, review
from pipelines.local import mlflow_ui
from pipelines.local.executions import ExecutionNotFound, ExecutionRecord, ExecutionStore, Status
from pipelines.local.feature_store import FeatureStore, FeatureStoreError
from pipelines.local.query_limits import DEFAULT_ROWS, MAX_ROWS, parse_row_limit
from pipelines.local.registry import ModelPackage, ModelRegistry, RegistryError, change_approval
from pipelines.local.workspace import Workspace, default_run_dir

INPUT_PARAMETER = "InputDataUrl"
SAGEMAKER_RUNNER = "pipelines.runners.sagemaker"
"""Imported only for ``--sagemaker`` and ``definition``: it imports the SageMaker SDK."""
EXIT_INTERRUPTED = 130
TABLE_WIDTH = 120
"""Columns a table or a wrapped line may take: a terminal beside an editor."""


# ------------------------------------------------------------------------------------------------- parser
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

    # Before or after the command: a command's own default must not overwrite the one given before it.
    run_dir = run_dir_option(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="python -m pipelines", description=__doc__.split("\n\n")[0], parents=[run_dir_option(None)]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[run_dir], help="Run the model-build pipeline.")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="On this machine (the default).")
    where.add_argument("--sagemaker", action="store_true", help="As a SageMaker pipeline execution.")
    run.add_argument("--wait", action="store_true", help="With --sagemaker: follow the execution to its end.")
    _add_parameters(run)
    run.add_argument(
        "--input", help=f"Shortcut for --param {INPUT_PARAMETER}=PATH (a CSV file, folder or s3:// URI)."
    )
    run.add_argument(
        "--no-cache", action="store_true", help="Run every step, even those with cached outputs."
    )

    executions = commands.add_parser("executions", parents=[run_dir], help="Past local executions.")
    executions.add_argument(
        "id", nargs="?", help="One execution in detail (an id, a unique prefix, or 'latest')."
    )

    features = commands.add_parser("features", parents=[run_dir], help="The local Feature Store.")
    feature_commands = features.add_subparsers(dest="features_command", required=True, metavar="ACTION")
    query = feature_commands.add_parser(
        "query",
        parents=[run_dir],
        help="SQL over `reviews` (latest records) and `reviews_history` (all rows).",
    )
    query.add_argument("sql", help="One SELECT; the store is read-only here, as on the page's SQL box.")
    query.add_argument(
        "--max-rows",
        type=_row_limit,
        default=DEFAULT_ROWS,
        help=f"Rows to print (default {DEFAULT_ROWS}, at most {MAX_ROWS}).",
    )
    get = feature_commands.add_parser(
        "get", parents=[run_dir], help="The latest record of a review (GetRecord)."
    )
    get.add_argument("review_id")
    delete = feature_commands.add_parser("delete", parents=[run_dir], help="Delete a record (DeleteRecord).")
    delete.add_argument("review_id")

    registry = commands.add_parser("registry", parents=[run_dir], help="The local Model Registry.")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    listing = registry_commands.add_parser("list", parents=[run_dir], help="Every version of the group.")
    listing.add_argument("--status", help="Only versions with this ModelApprovalStatus.")
    describe = registry_commands.add_parser("describe", parents=[run_dir], help="One version, as JSON.")
    describe.add_argument("version", type=int)
    for action in ("approve", "reject"):
        change = registry_commands.add_parser(action, parents=[run_dir], help=f"{action.title()} a version.")
        change.add_argument("version", type=int)
        change.add_argument("--note", help="Why (stored as the version's ApprovalDescription).")

    serve = commands.add_parser(
        "serve",
        parents=[run_dir],
        help="In the foreground: the local endpoints (SageMaker's runtime API), or one VERSION (/invocations).",
    )
    serve.add_argument(
        "version", type=int, nargs="?", help="Serve only this registered version, as its container would."
    )
    _add_listen_options(serve)

    endpoints = commands.add_parser(
        "endpoints",
        parents=[run_dir],
        help="The local staging and prod endpoints that approvals roll out to.",
    )
    endpoint_commands = endpoints.add_subparsers(dest="endpoints_command", metavar="ACTION")
    endpoint_commands.add_parser("list", parents=[run_dir], help="Each endpoint, its version and history.")
    start = endpoint_commands.add_parser(
        "start", parents=[run_dir], help="Start the server in the background."
    )
    _add_listen_options(start, host=False)
    endpoint_commands.add_parser("stop", parents=[run_dir], help="Stop the background server.")
    endpoint_commands.add_parser("status", parents=[run_dir], help="Whether the server runs, and where.")
    endpoint_commands.add_parser(
        "promote", parents=[run_dir], help="The manual gate: roll what staging serves out to prod."
    )
    deploy = endpoint_commands.add_parser(
        "deploy",
        parents=[run_dir],
        help="Roll the newest approved version that has not failed on staging out to it (after a missed "
        "rollout); --version N retries one that failed.",
    )
    deploy.add_argument("--version", type=int, help="This approved version, even if it failed before.")

    predict = commands.add_parser(
        "predict",
        parents=[run_dir],
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

    ui = commands.add_parser(
        "ui", parents=[run_dir], help="A local web page: executions, the registry, endpoints, features."
    )
    ui.add_argument(
        "--port",
        type=_port,
        default=None,
        help="Port on 127.0.0.1 (default $MLOPS_UI_PORT or 8765; 0: any free).",
    )

    monitor = commands.add_parser(
        "monitor",
        parents=[run_dir],
        help="Judge an endpoint's captured traffic against its model's baseline.",
    )
    monitor.add_argument("--endpoint", help="A stage (staging, prod) or an endpoint name (default: prod).")
    monitor.add_argument("--since", help="Start of the window: ISO-8601 or an age (30m, 2h, 1d).")
    monitor.add_argument("--until", help="End of the window (default: now).")
    monitor.add_argument(
        "--retrain-on-drift", action="store_true", help="Start a local pipeline run if the verdict is drift."
    )

    review.add_parser(commands, run_dir)
    experiments.add_parser(commands, run_dir)
    definition = commands.add_parser(
        "definition", parents=[run_dir], help="The SageMaker pipeline definition JSON."
    )
    _add_parameters(definition)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535; 0 picks a free one)")
    return port


def _add_listen_options(parser: argparse.ArgumentParser, host: bool = True) -> None:
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help="Port to listen on (default $MLOPS_ENDPOINTS_PORT or 8080; 0: any free).",
    )
    if host:
        parser.add_argument(
            "--host", default="127.0.0.1", help="Loopback address to listen on (default 127.0.0.1)."
        )


def _add_parameters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"A pipeline parameter; repeatable. Names: {', '.join(PIPELINE.parameter_names)}.",
    )


# ------------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        workspace = Workspace.open(args.run_dir)
        match args.command:
            case "run":
                return _run(args, workspace)
            case "executions":
                return _executions(args, workspace)
            case "features":
                return _features(args, workspace)
            case "registry":
                return _registry(args, workspace)
            case "serve":
                return _serve(args, workspace)
            case "endpoints":
                return _endpoints(args, workspace)
            case "predict":
                return _predict(args, workspace)
            case "ui":
                from pipelines.ui.server import run_ui

                return run_ui(workspace, args.port)
            case "definition":
                print(_sagemaker_runner().definition_json(_parameter_strings(args.param)))
                return 0
            case "monitor":
                from model_deploy.local.monitoring import command
                from model_deploy.local.rollout import on_model_package_event
                from pipelines.runners.local import LocalRunner

                def start_pipeline(overrides: dict[str, Any]) -> Any:
                    return LocalRunner(workspace, subscribers=[on_model_package_event]).run(overrides)

                retrain = start_pipeline if args.retrain_on_drift else None
                return command(workspace, args.endpoint, args.since, args.until, retrain)
            case "review":
                return review.command(args, workspace)
            case "experiments":
                return experiments.command(args, workspace)
    except (
        UsageError,
        ParameterError,
        RegistryError,
        FeatureStoreError,
        ExecutionNotFound,
        ValueError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the reader has gone, which is no error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush stays quiet
        return 0
    except Exception as error:  # botocore's, from `definition` and `run --sagemaker`
        problem = aws_setup_problem(error)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
    raise AssertionError(args.command)


# ------------------------------------------------------------------------------------------------- run
def _run(args: argparse.Namespace, workspace: Workspace) -> int:
    assignments = list(args.param) + ([f"{INPUT_PARAMETER}={args.input}"] if args.input else [])
    if args.sagemaker:
        overrides = _parameter_strings(assignments)
        if (url := overrides.get(INPUT_PARAMETER)) and not url.startswith("s3://"):
            raise UsageError(f"on SageMaker, {INPUT_PARAMETER} must be an s3:// URI, not {url!r}")
        return _sagemaker_runner().run_on_sagemaker(overrides, args.wait)

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
    register = next(step for step in record.steps if step.type == RegisterStep.kind)
    version = register.detail["ModelPackageVersion"]
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        package = registry.describe(workspace.config.model_package_group_name, version)
    print(f"Registered {package.group} version {package.version}: {package.approval_status}")
    print(f"  {package.arn}")
    print(f"  metrics     {_metrics_line(package)}")
    if (champion := package.champion()) is not None:
        print(f"  champion    {champion['message']}")
    print(f"  data check  {_data_check_line(package)}")
    print(f"  model       {workspace.local_path(package.model_data_url)}")
    for picture in record.pictures(workspace):
        print(f"  picture     {picture}")
    print(
        f"  logs        {Path(register.log).parent if register.log else workspace.executions_dir / record.id}"
    )
    cli = f"{_python_command()} -m pipelines"
    query = shlex.quote("SELECT sentiment, count(*) FROM reviews GROUP BY 1")
    print("\nNext:")
    print(f"  {cli} executions {record.id}")
    print(f"  {cli} registry approve {package.version} --note 'checked the confusion matrix'")
    print(f"  {cli} features query {query}")
    print(f"  {cli} registry list")


def _python_command() -> str:
    """The interpreter to type next: ``.venv/bin/python`` after ``make run``, where plain ``python`` lacks the deps."""
    interpreter = Path(sys.executable)
    try:
        return str(interpreter.relative_to(Path.cwd()))
    except ValueError:
        return "python"


def _metrics_line(package: ModelPackage, short: bool = False) -> str:
    """The evaluation report's scalar metrics (``metrics.<name>.value``); ``short``: accuracy and F1 only."""
    scalars = package.scalar_metrics(short)
    line = "  ".join(f"{name} {value:.4f}" for name, value in scalars.items()) or "(none reported)"
    if (baseline := package.baseline()) is not None:
        name, best_f1, margin = baseline
        line += f"  vs {name} f1_macro {best_f1:.4f} ({margin:+.4f})"
    check = package.champion()
    return f"{line}  {_champion_text(check)}" if check is not None else line


def _champion_text(check: dict[str, Any]) -> str:
    """How a version compared with the champion when it was evaluated: ``vs champion v3 f1_macro ...``."""
    if check["outcome"] == "no champion":
        return "vs champion: none"
    arn = str(check.get("model_package_arn") or "")
    version = arn.rsplit("/", 1)[-1] if arn else "?"
    return f"vs champion v{version} f1_macro {check['f1_macro']:.4f} ({check['margin']:+.4f})"


def _data_check_line(package: ModelPackage) -> str:
    """The data check's figures the version carries (rows, worst missing share, bias), or a dash."""
    figures = package.lineage.data_check
    if not figures:
        return "-"

    def number(key: str) -> str:
        try:
            return f"{float(figures[key]):.2f}"
        except (KeyError, ValueError):
            return "n/a"

    return (
        f"{figures.get('DataCheckRows', '?')} rows, missing<={number('DataCheckMaxMissingShare')}, "
        f"max |CI| {number('DataCheckMaxAbsCI')}, max |DPL| {number('DataCheckMaxAbsDPL')}"
    )


def _parameter_strings(assignments: Sequence[str]) -> dict[str, str]:
    """Checked against the spec's types and ranges (with SageMaker's defaults), then passed on as strings
    (what SageMaker executions take)."""
    values = parse_assignments(PIPELINE, assignments)
    resolve(PIPELINE, values, local=False)
    return {name: render(value) for name, value in values.items()}


def _sagemaker_runner() -> Any:
    try:
        return importlib.import_module(SAGEMAKER_RUNNER)
    except ModuleNotFoundError as error:
        if error.name != SAGEMAKER_RUNNER:
            raise
        raise UsageError(
            "the SageMaker runner (pipelines/runners/sagemaker.py) is not in this checkout; use `run --local`"
        ) from None


# ------------------------------------------------------------------------------------------------- executions
def _executions(args: argparse.Namespace, workspace: Workspace) -> int:
    store = ExecutionStore(workspace.executions_dir)
    if args.id:
        _print_execution(store.load(args.id), workspace)
        return 0
    records = store.list()
    if not records:
        print(f"No executions in {workspace.root} yet: `python -m pipelines run --local` starts one.")
        return 0
    rows = [
        [
            record.id,
            str(record.status),
            f"{record.duration_s:.0f}s" if record.duration_s is not None else "-",
            _steps_cell(record),
            _gate_cell(record, workspace),
        ]
        for record in records
    ]
    _print_table(["execution", "status", "time", "steps", "quality gate"], rows)
    return 0


def _steps_cell(record: ExecutionRecord) -> str:
    """``7 steps, 3 cached``, with the step that failed or runs (`executions ID` has each step)."""
    cached = sum(1 for step in record.steps if step.cache_hit)
    parts = [f"{len(record.steps)} steps"] + ([f"{cached} cached"] if cached else [])
    parts += [f"{step.name} failed" for step in record.steps if step.status == Status.FAILED]
    parts += [f"{step.name} running" for step in record.steps if step.status == Status.EXECUTING]
    return ", ".join(parts)


def _gate_cell(record: ExecutionRecord, workspace: Workspace) -> str:
    """What each condition compared, ``name value`` (with ``!`` where a check failed)."""
    cells = []
    for step in record.steps:
        for check in step.detail.get("checks", []) if step.type == "Condition" else []:
            value = check["left"]
            cells.append(f"{check['check']} {shown(value)}{'' if check['outcome'] else '!'}")
    return ", ".join(cells) or "-"


def _print_execution(record: ExecutionRecord, workspace: Workspace) -> None:
    print(f"Execution {record.id}: {record.status}")
    print(f"  pipeline   {record.pipeline}")
    print(f"  started    {record.created}   ended {record.ended or '-'}")
    if record.failure_reason:
        print(f"  reason     {record.failure_reason}")
    parameters = ", ".join(f"{k}={render(v)}" for k, v in record.parameters.items())
    print(textwrap.fill(parameters, TABLE_WIDTH, initial_indent="  parameters ", subsequent_indent=" " * 13))
    policies = [step.detail["retry_policies"] for step in record.steps if "retry_policies" in step.detail]
    common = max(policies, key=policies.count) if policies else None
    for policy in common or []:
        print(f"  retries    {retry_policy_text(policy)}")
    for step in record.steps:
        took = f"{step.duration_s:.1f}s" if step.duration_s is not None else "running"
        print(f"\n  {step.name} ({step.type}): {step.status} in {took}")
        if step.cache_hit:
            print(f"    cache hit: outputs of execution {step.cache_hit}")
        if step.failure_reason:
            print(f"    reason: {step.failure_reason}")
        for name, value in step.metrics.items():
            print(f"    metric {name} = {value}")
        for name, uri in step.outputs.items():
            print(f"    output {name}: {workspace.local_path(uri)}")
        for name, value in step.detail.items():
            if name == "retry_policies":
                for policy in value if value != common else []:  # only where a step differs
                    print(f"    retries: {retry_policy_text(policy)}")
            elif name == "checks":
                for check in value:
                    verdict = "holds" if check["outcome"] else "FAILS"
                    print(
                        f"    check {check['check']}: {check['json_path']} = {shown(check['left'])} "
                        f"{check['operator']} {shown(check['right'])}: {verdict}"
                    )
            elif name not in ("metric_series", "outcome"):
                print(f"    {name}: {value}")
        if step.log:
            print(f"    log: {step.log}")


# ------------------------------------------------------------------------------------------------- features
def _features(args: argparse.Namespace, workspace: Workspace) -> int:
    store = FeatureStore(workspace.offline_store_root)
    match args.features_command:
        case "query":
            columns, rows, more = store.query_read_only(args.sql, args.max_rows)
            if not columns:
                print("The statement returned nothing to show.")
                return 0
            _print_table(columns, [[_cell(value) for value in row] for row in rows])
            if more:
                print(f"(more than {len(rows)} rows; the first {len(rows)} shown, --max-rows for more)")
            elif not rows:
                print("(0 rows)")
        case "get":
            record = store.get_record(args.review_id)
            if record is None:
                print(f"No record with review_id {args.review_id!r}", file=sys.stderr)
                return 1
            print(json.dumps(record, indent=2, default=str))
        case "delete":
            store.delete_record(args.review_id)
            print(f"Deleted {args.review_id}: gone from `reviews`, marked is_deleted in `reviews_history`.")
    return 0


def _row_limit(text: str) -> int:
    try:
        return parse_row_limit(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------------------- registry
def _registry(args: argparse.Namespace, workspace: Workspace) -> int:
    group = workspace.config.model_package_group_name
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        match args.registry_command:
            case "list":
                packages = registry.list(group, args.status)
                if not packages:
                    print(f"No versions in {group} yet: `python -m pipelines run --local` registers one.")
                    return 0
                _print_table(
                    ["version", "status", "created", "execution", "note"],
                    [
                        [
                            str(p.version),
                            str(p.approval_status),
                            p.creation_time[:19],
                            p.lineage.execution_id,
                            p.approval_description or "",
                        ]
                        for p in packages
                    ],
                    details=[
                        [f"metrics: {_metrics_line(p, short=True)}", f"data check: {_data_check_line(p)}"]
                        for p in packages
                    ],
                )
            case "describe":
                package = registry.describe(group, args.version)
                described = {**package.describe(), "ApprovalHistory": package.history}
                if (champion := package.champion()) is not None:
                    described["ChampionCheck"] = champion  # what the gate compared it with, from evaluation
                if (
                    package.lineage.mlflow_run_id
                ):  # the execution's run in MLflow's UI (`pipelines experiments`)
                    described["MlflowRun"] = {
                        "RunId": package.lineage.mlflow_run_id,
                        "Url": mlflow_ui.run_url(package.lineage.mlflow_run_id),
                    }
                print(json.dumps(described, indent=2))
            case "approve" | "reject":
                status = "Approved" if args.registry_command == "approve" else "Rejected"
                from model_deploy.local.rollout import on_model_package_event

                package, failures = change_approval(
                    workspace, args.version, status, args.note, [on_model_package_event]
                )
                print(f"{group} version {package.version} is now {package.approval_status}")
                return 1 if failures else 0
    return 0


# ------------------------------------------------------------------------------------------------- endpoints
def _serve(args: argparse.Namespace, workspace: Workspace) -> int:
    # Imported here: the server imports uvicorn, and the handlers it loads import torch.
    from model_deploy.local.host import ServingError
    from model_deploy.local.rollout import default_port
    from model_deploy.local.server import adhoc_state, bind, run_foreground, workspace_state
    from model_deploy.local.state import ServerInfo

    port = default_port() if args.port is None else args.port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    package = None
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
        print(f"  {_python_command()} -m pipelines endpoints\n", flush=True)


def _endpoints(args: argparse.Namespace, workspace: Workspace) -> int:
    from model_deploy.local.rollout import (
        STAGES,
        RolloutError,
        RolloutFailed,
        raise_if_failed,
        responds,
        roll_out,
        start_server,
        stop_server,
    )
    from model_deploy.local.state import ServerInfo

    try:
        match args.endpoints_command:
            case "start":
                running = ServerInfo.read(workspace.endpoints_dir)
                if running is not None and args.port not in (None, 0, urlsplit(running.url).port):
                    raise UsageError(
                        f"the endpoint server already runs at {running.url} (pid {running.pid}), not on port "
                        f"{args.port}: `{_python_command()} -m pipelines endpoints stop` first to move it"
                    )
                info = start_server(workspace, args.port)
                print(f"The endpoint server runs at {info.url} (pid {info.pid}).")
            case "stop":
                stopped = stop_server(workspace)
                print(
                    f"Stopped the endpoint server (pid {stopped.pid})."
                    if stopped
                    else "No endpoint server runs."
                )
            case "status":
                running = ServerInfo.read(workspace.endpoints_dir)
                if running is None:
                    print("No endpoint server runs.")
                    return 3
                if not responds(running.url):
                    print(
                        f"The endpoint server (pid {running.pid}) does not answer at {running.url}; see its log."
                    )
                    return 1
                print(f"The endpoint server runs at {running.url} (pid {running.pid}).")
            case "promote":
                result = raise_if_failed(roll_out(workspace, STAGES[1]))
                return 0 if result.outcome in ("Deployed", "Unchanged") else 1
            case "deploy":
                result = raise_if_failed(roll_out(workspace, STAGES[0], version=args.version))
                return 0 if result.outcome in ("Deployed", "Unchanged") else 1
            case _:
                _list_endpoints(workspace)
    except RolloutFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except RolloutError as error:
        raise UsageError(str(error)) from None
    return 0


def _list_endpoints(workspace: Workspace) -> None:
    from model_deploy.local.rollout import describe_endpoints

    described, info = describe_endpoints(workspace)
    if not described:
        print("No endpoints yet: approve a version (`registry approve N`) to roll it out to staging.")
        return
    _print_table(
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
        print(f"\nThe endpoint server is stopped: `{_python_command()} -m pipelines endpoints start`.")


def _one_line(text: str, limit: int = 200) -> str:
    """A reason on one line of the listing; the whole text stays in endpoints.json."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _predict(args: argparse.Namespace, workspace: Workspace) -> int:
    if args.input is not None or args.output is not None or args.version is not None:
        from pipelines.commands.batch_predict import predict_file

        if args.text:
            flags = {"--input": args.input, "--output": args.output, "--version": args.version}
            given = ", ".join(flag for flag, value in flags.items() if value is not None)
            raise UsageError(
                f"reviews on the command line go to an endpoint, and {given} score a file "
                "(--input FILE --output FILE [--version N]): give one or the other"
            )
        return predict_file(args, workspace, _endpoint_name)
    if not args.text:
        raise UsageError("give one or more reviews, or --input FILE --output FILE --version N")
    from model_deploy.local.rollout import RolloutError, invoke_reviews
    from model_deploy.local.state import EndpointStore, ServerInfo
    from model_deploy.stage_config import STAGES

    if ServerInfo.read(workspace.endpoints_dir) is None:
        raise UsageError(f"no endpoint server runs: `{_python_command()} -m pipelines endpoints start`")
    records = EndpointStore(workspace.endpoints_dir).load()
    name = _endpoint_name(args.endpoint, workspace)
    stage = next((s for s in STAGES if workspace.config.endpoint_name(s) == name), None)
    if stage is not None and (name not in records or records[name].version is None):
        how = (
            f"promote staging first: `{_python_command()} -m pipelines endpoints promote`"
            if stage != STAGES[0]
            else f"approve a version first: `{_python_command()} -m pipelines registry approve N`"
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


def _endpoint_name(endpoint: str | None, workspace: Workspace) -> str:
    """A stage or an endpoint name; none: prod if it serves a version, else staging."""
    from model_deploy.local.state import EndpointStore
    from model_deploy.stage_config import STAGES

    if endpoint:
        return workspace.config.endpoint_name(endpoint) if endpoint in STAGES else endpoint
    records = EndpointStore(workspace.endpoints_dir).load()
    serving = [workspace.config.endpoint_name(s) for s in reversed(STAGES)]
    return next((n for n in serving if records.get(n) and records[n].version), serving[-1])


def _print_table(
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
