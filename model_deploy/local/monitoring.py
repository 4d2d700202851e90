"""The drift monitor of a local endpoint: ``python -m pipelines monitor``.

The same job SageMaker runs on a schedule (``model_build/steps/monitor.py``), on the local endpoint's
captures: this module finds what it needs and records what it found.

- the baseline: the version the endpoint serves -> its registry entry -> the evaluation report's folder ->
  ``monitoring-baseline/`` beside ``evaluation.json`` (what the evaluation step wrote for that version);
- the captures: ``<run dir>/s3/<data bucket>/data-capture/<stage>/<endpoint>/``, where the local server
  writes them in SageMaker's layout;
- the thresholds and the window: the stage file's ``monitoring`` section.

Each run is kept in ``<run dir>/monitoring/<endpoint>/<run id>/`` (report, violations, picture, log) and listed
in ``<run dir>/monitoring/runs.jsonl``, one JSON line per run, so that a page or a later command can show
the history. Given a ``start_pipeline`` (the command line passes the local runner's), a ``drift`` verdict
starts a pipeline run, at most once per the stage's ``retrain_cooldown_hours`` (as the alarm on AWS starts the
build pipeline): this module never imports a runner, which sits above it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from model_build.pipeline_spec import FILLED_AT_START, STEPS_SOURCE_DIR
from model_deploy.local.state import EndpointStore
from model_deploy.stage_config import STAGES, StageConfig, load_stage
from pipelines.local import container
from pipelines.local.cache import content_hash
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import REPO_ROOT, Workspace

MONITOR_SCRIPT = REPO_ROOT / STEPS_SOURCE_DIR / "monitor.py"
BASELINE_FOLDER = "monitoring-baseline"
"""``drift.BASELINE_FOLDER``: the step scripts' module is not importable from here (it imports siblings)."""
RUNS_FILE = "runs.jsonl"
PipelineStarter = Callable[[dict[str, Any]], Any]
"""Starts a pipeline run with these parameter overrides and returns its execution record (``.id``, ``.status``)."""
EXIT_CODES = {"no_drift": 0, "drift": 1, "data_quality": 1, "insufficient_traffic": 3, "no_traffic": 3}
"""``monitor``'s exit status per verdict: 0 fine, 1 act on it, 3 nothing judged."""


STARTED = "started execution "
"""How a run that started retraining records it (older records hold the bare execution id)."""


class MonitoringError(ValueError):
    """What the monitor needs is missing (no endpoint, no served version, no baseline): says which."""


@dataclass(frozen=True)
class MonitoringRun:
    """One run of the job on one endpoint, as ``runs.jsonl`` keeps it."""

    id: str
    endpoint: str
    stage: str
    version: int
    since: str
    until: str
    verdict: str
    summary: str
    requests: int
    reviews: int
    malformed_lines: int
    violations: list[str]
    folder: str
    report: str
    picture: str
    log: str
    created: str
    retraining: str | None = None
    """The pipeline execution it started, or why it started none (cool-down), or None (not asked)."""
    answered_by: dict[str, int] = field(default_factory=dict)
    """Reviews of the window per model version that answered them (from the captures); ``version`` is the
    one whose baseline judged the window: the version that answered most of it, not the one serving now."""


class MonitoringRunStore:
    """``<run dir>/monitoring/``: a folder per run and ``runs.jsonl``, appended to (never rewritten)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / RUNS_FILE

    def append(self, run: MonitoringRun) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(run)) + "\n")

    def list(self, endpoint: str | None = None) -> list[MonitoringRun]:
        if not self.path.is_file():
            return []
        runs = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                run = MonitoringRun(**json.loads(line))
            except (json.JSONDecodeError, TypeError) as error:
                raise MonitoringError(f"{self.path} line {number} is not a monitoring run: {error}") from None
            if endpoint is None or run.endpoint == endpoint:
                runs.append(run)
        return runs


def monitoring_dir(workspace: Workspace) -> Path:
    return workspace.root / "monitoring"


def resolve_endpoint(workspace: Workspace, endpoint: str | None) -> tuple[str, str, int]:
    """(endpoint name, stage, served version) of a stage name or endpoint name; default: prod."""
    records = EndpointStore(workspace.endpoints_dir).load()
    requested = endpoint or STAGES[-1]
    name = workspace.config.endpoint_name(requested) if requested in STAGES else requested
    record = records.get(name)
    if record is None:
        known = ", ".join(sorted(records)) or "none yet (approve a version to roll it out)"
        raise MonitoringError(f"no local endpoint {name}; the endpoints are: {known}")
    if record.version is None:
        raise MonitoringError(f"{name} serves no version yet: nothing to compare its traffic with")
    return name, record.stage, record.version


def baseline_folder(workspace: Workspace, version: int) -> Path:
    """The served version's ``monitoring-baseline/``, beside its evaluation report."""
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        package = registry.describe(workspace.config.model_package_group_name, version)
    if not package.metrics_report_uri:
        raise MonitoringError(f"version {version} was registered without an evaluation report: no baseline")
    return workspace.local_path(package.metrics_report_uri.rsplit("/", 1)[0]) / BASELINE_FOLDER


def job_arguments(
    config: StageConfig,
    baseline: Path,
    captures: Path,
    endpoint: str,
    output: Path,
    since: str | None,
    until: str | None,
) -> list[str]:
    """The job's command line: what the AWS schedule passes too, with local paths for the S3 ones."""
    monitoring = config.monitoring
    arguments = [
        "--baseline", str(baseline),
        "--captures", str(captures),
        "--endpoint", endpoint,
        "--window-hours", str(monitoring.window_hours),
        "--thresholds", json.dumps(monitoring.thresholds.as_json()),
        "--output-data", str(output),
    ]  # fmt: skip
    # ``--since=VALUE``: a value that starts with "-" must reach the job's own check, not look like a flag.
    if since:
        arguments.append(f"--since={since}")
    if until:
        arguments.append(f"--until={until}")
    return arguments


def monitor_endpoint(
    workspace: Workspace,
    endpoint: str | None = None,
    since: str | None = None,
    until: str | None = None,
    console: BinaryIO | None = None,
) -> MonitoringRun:
    """Run the job on the endpoint's captures, keep its outputs, and record the run."""
    name, stage, version = resolve_endpoint(workspace, endpoint)
    config = load_stage(stage)
    created = datetime.now(UTC)
    run_id = created.strftime("%Y%m%dT%H%M%S%fZ")
    folder = monitoring_dir(workspace) / name / run_id
    captures = workspace.data_capture_root(stage) / name

    def judge(version: int) -> dict[str, Any]:
        baseline = baseline_folder(workspace, version)
        if not (baseline / "baseline.json").is_file():
            raise MonitoringError(
                f"version {version} has no monitoring baseline ({baseline}): it was evaluated before the "
                "evaluation step wrote one; run the pipeline again and approve the new version"
            )
        arguments = job_arguments(config, baseline, captures, name, folder, since, until)
        script = container.ScriptRun(
            MONITOR_SCRIPT, arguments, MONITOR_SCRIPT.parent, dict(os.environ), folder / "monitor.log"
        )
        try:
            container.run_script(script, console or sys.stdout.buffer)
        except container.StepProcessError as error:
            raise MonitoringError(f"the monitoring job failed: {error}") from None
        report: dict[str, Any] = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        return report

    report = judge(version)
    answered_by = {str(k): int(v) for k, v in report["traffic"].get("reviews_by_version", {}).items()}
    if answered_by:
        most = max(answered_by, key=lambda key: (answered_by[key], key))
        if most != str(version):  # a promotion or rollback inside the window: judge what answered
            version = int(most)
            report = judge(version)
    log = folder / "monitor.log"
    run = MonitoringRun(
        id=run_id,
        endpoint=name,
        stage=stage,
        version=version,
        since=report["window"]["since"],
        until=report["window"]["until"],
        verdict=report["verdict"],
        summary=report["summary"],
        requests=report["traffic"]["requests"],
        reviews=report["traffic"]["reviews"],
        malformed_lines=report["traffic"]["malformed_lines"],
        violations=[violation["description"] for violation in report["violations"]],
        folder=str(folder),
        report=str(folder / "report.json"),
        picture=str(folder / "drift.png"),
        log=str(log),
        created=created.isoformat(),
        answered_by=answered_by,
    )
    return run


def last_retraining(store: MonitoringRunStore, endpoint: str) -> tuple[datetime, str] | None:
    """When this endpoint's monitor last started a pipeline run, and which."""
    started = [
        (datetime.fromisoformat(run.created), run.retraining.removeprefix(STARTED))
        for run in store.list(endpoint)
        if run.retraining and not run.retraining.startswith("not started")
    ]
    return max(started) if started else None


def retrain(
    workspace: Workspace,
    run: MonitoringRun,
    start_pipeline: Callable[[], Any],
    now: datetime | None = None,
    announce: Callable[[], None] = lambda: None,
) -> MonitoringRun:
    """Start a pipeline run for a ``drift`` verdict, unless one was started within the cool-down;
    ``announce`` is called only when one is started, before it runs."""
    hours = load_stage(run.stage).monitoring.retrain_cooldown_hours
    cooldown = timedelta(hours=hours)
    previous = last_retraining(MonitoringRunStore(monitoring_dir(workspace)), run.endpoint)
    moment = now or datetime.now(UTC)
    if previous is not None and moment - previous[0] < cooldown:
        until = (previous[0] + cooldown).strftime("%Y-%m-%d %H:%M UTC")
        return replace(
            run,
            retraining=f"not started: execution {previous[1]} was started at "
            f"{previous[0].strftime('%Y-%m-%d %H:%M UTC')}, within the {hours} h cool-down "
            f"(retrain_cooldown_hours; the next run can start after {until})",
        )
    announce()
    record = start_pipeline()
    return replace(run, retraining=f"{STARTED}{record.id}")


def record(workspace: Workspace, run: MonitoringRun) -> None:
    MonitoringRunStore(monitoring_dir(workspace)).append(run)


def command(
    workspace: Workspace,
    endpoint: str | None,
    since: str | None,
    until: str | None,
    start_pipeline: PipelineStarter | None = None,
) -> int:
    """``python -m pipelines monitor``: run, print the verdict and where the files are, record; exit status
    per :data:`EXIT_CODES`. With ``start_pipeline``, a ``drift`` verdict retrains (``--retrain-on-drift``)."""
    run = monitor_endpoint(workspace, endpoint, since, until)
    print(f"\n{run.endpoint} (version {run.version}'s baseline), {run.since[:19]} to {run.until[:19]} UTC:")
    print(f"  verdict     {run.verdict}: {run.summary}")
    print(
        f"  traffic     {run.requests} requests, {run.reviews} reviews, {run.malformed_lines} unreadable lines"
    )
    if run.answered_by:
        shown = ", ".join(f"version {v} ({n} reviews)" for v, n in sorted(run.answered_by.items()))
        print(f"  answered by {shown}")
    if run.verdict in ("no_traffic", "insufficient_traffic"):
        print(f"  why         {_too_little_traffic(run)}")
    for violation in run.violations:
        print(f"  violation   {violation}")
    print(f"  report      {run.report}")
    print(f"  picture     {run.picture}")
    try:
        if start_pipeline is not None and run.verdict == "drift":
            if reason := unchanged_input(workspace, run.version):
                run = replace(run, retraining=f"not started: {reason}")
            else:
                run = retrain(
                    workspace,
                    run,
                    lambda: _run_pipeline(workspace, run.version, start_pipeline),
                    announce=lambda: print("\nDrift: starting a pipeline run (retraining).", flush=True),
                )
        elif start_pipeline is not None:
            run = replace(run, retraining=f"not started: the verdict is {run.verdict}, not drift")
        if run.retraining:
            print(f"  retraining  {run.retraining}")
    finally:
        record(workspace, run)
    print(f"  recorded in {MonitoringRunStore(monitoring_dir(workspace)).path}")
    return EXIT_CODES[run.verdict]


def _too_little_traffic(run: MonitoringRun) -> str:
    """Why a window holds too little to judge, with the two settings that decide it."""
    config = load_stage(run.stage)
    percentage = config.data_capture.sampling_percentage
    needed = config.monitoring.thresholds.min_reviews
    captured = (
        f"{run.stage} captures {percentage}% of requests (data_capture.sampling_percentage in "
        f"model_deploy/stages/{run.stage}.json), chosen at random"
        if percentage < 100
        else f"{run.stage} captures every request"
    )
    return (
        f"{captured}; a window is judged from {needed} captured reviews (monitoring.thresholds.min_reviews) "
        f"and this one holds {run.reviews}: send more traffic, widen the window (--since), or raise the "
        "sampling percentage"
    )


def unchanged_input(workspace: Workspace, version: int) -> str | None:
    """Why retraining would only repeat ``version``: its input holds what it held when the version was built,
    so every step would be a cache hit and the registry would get the same model again. None: it changed (or
    cannot be read here, which the run itself reports)."""
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        lineage = registry.describe(workspace.config.model_package_group_name, version).lineage
    uri = lineage.input_data_url or workspace.raw_reviews_uri  # empty: the raw reviews, as on AWS
    if not lineage.input_data_sha256:
        return None
    path = workspace.local_path(uri) if uri.startswith("s3://") else REPO_ROOT / uri  # an absolute uri stays
    if not path.exists() or content_hash(path) != lineage.input_data_sha256:
        return None
    return (
        f"the input {uri} holds the data version {version} was built from, so a run would repeat it from the "
        "cache: add the new reviews there first (or run the pipeline on them: "
        "`python -m pipelines run --local --input NEW_DATA`)"
    )


def _run_pipeline(workspace: Workspace, version: int, start_pipeline: PipelineStarter) -> Any:
    """The pipeline again, with the parameters that built ``version`` (its input is read afresh)."""
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        lineage = registry.describe(workspace.config.model_package_group_name, version).lineage
    print(
        f"  parameters  those of execution {lineage.execution_id}, which built version {version}", flush=True
    )
    # The champion is whoever serves now, resolved afresh, not the one that version was compared with.
    again = {name: value for name, value in lineage.parameters.items() if name not in FILLED_AT_START}
    record = start_pipeline(again)
    print(f"  execution   {record.id}: {record.status}", flush=True)
    return record
