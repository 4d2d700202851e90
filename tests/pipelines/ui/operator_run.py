"""A made-up run folder as an operator finds it after a while: prod serves a version that was rejected since,
the monitor judged prod's traffic twice (the last window drifted), and the last execution failed its gate."""

from __future__ import annotations

import shutil
from pathlib import Path

from model_build.pipeline_spec import CHECK, FAIL, JOB_RETRIES, PIPELINE, REGISTER
from model_deploy.local.monitoring import MonitoringRun, MonitoringRunStore, monitoring_dir
from model_deploy.local.state import Deployment, EndpointRecord, EndpointStore, now
from pipelines.local.executions import ExecutionRecord, ExecutionStore, Status, StepRecord
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace

PICTURE = Path(__file__).resolve().parents[3] / "pipelines" / "ui" / "screenshots" / "endpoints.png"
"""Any real PNG stands for drift.png: the page only has to show it."""
FAILED_GATE = (
    "The model failed the quality gate and was not registered: test accuracy 0.41 (MinAccuracy 0.5)."
)


def make_operator_run(workspace: Workspace) -> Workspace:
    """``workspace`` (with versions 1 and 2 registered) turned into the run folder described above."""
    group = workspace.config.model_package_group_name
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        registry.update_approval(group, 2, "Rejected", "answers neutral to everything")
    prod = workspace.config.endpoint_name("prod")
    arn = f"arn:aws:sagemaker:{workspace.config.region}:000000000000:model-package/{group}/2"
    history = [Deployment(now(), 2, arn, "Deployed")]
    EndpointStore(workspace.endpoints_dir).save({prod: EndpointRecord(prod, "prod", 2, arn, None, history)})

    store = MonitoringRunStore(monitoring_dir(workspace))
    for number, (verdict, violations) in enumerate(
        [("no_drift", []), ("drift", ["population stability index of review lengths is 0.61, above 0.25"])]
    ):
        folder = monitoring_dir(workspace) / prod / f"run{number}"
        folder.mkdir(parents=True)
        shutil.copyfile(PICTURE, folder / "drift.png")
        store.append(
            MonitoringRun(
                id=f"run{number}", endpoint=prod, stage="prod", version=2,
                since=f"2026-12-01T1{number}:00:00+00:00", until=f"2026-12-01T1{number + 1}:00:00+00:00",
                verdict=verdict, summary=f"{verdict} summary", requests=40, reviews=160, malformed_lines=0,
                violations=violations, folder=str(folder), report=str(folder / "report.json"),
                picture=str(folder / "drift.png"), log=str(folder / "monitor.log"),
                created=f"2026-12-01T1{number + 1}:05:00+00:00", answered_by={"2": 160},
            )
        )  # fmt: skip

    executions = ExecutionStore(workspace.executions_dir)
    record: ExecutionRecord = executions.create(workspace.config.pipeline_name, PIPELINE.defaults(local=True))
    for step in PIPELINE.steps:
        if step.name == REGISTER:  # the branch the failed gate did not take
            record.skipped.append(step.name)
            continue
        entry = StepRecord(step.name, step.kind)
        failed = step.name == FAIL
        entry.finish(Status.FAILED if failed else Status.SUCCEEDED, FAILED_GATE if failed else None)
        if step.kind in ("Processing", "Training"):
            entry.detail["retry_policies"] = [policy.request() for policy in JOB_RETRIES]
        if step.name == CHECK:
            entry.detail = {"checks": [], "outcome": False}
        record.steps.append(entry)
    record.status, record.failure_reason, record.ended = Status.FAILED, FAILED_GATE, now()
    executions.save(record)
    return workspace
