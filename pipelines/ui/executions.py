"""The page's Executions area: every local execution, one in detail (its graph, steps, outputs, log tails),
and a step's whole log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from model_build.pipeline_spec import MLFLOW_RUN_PARAMETER, PIPELINE, retry_policy_text
from model_build.steps.tracking import NO_RUN
from pipelines.local import mlflow_ui
from pipelines.local.executions import ExecutionRecord, Status, StepRecord
from pipelines.ui.graph import build_graph
from pipelines.ui.pages import Site, page, site_of

LOG_TAIL_LINES = 40
MAX_LISTED_FILES = 12
"""Files listed per step output; the rest are counted (the Feature Store's output holds many Parquet files)."""
HIDDEN_DETAIL = ("metric_series", "checks", "outcome", "retry_policies", "diagnostics")
"""A step's details the page shows in their own places (the graph, the checks, the retries), not as text."""


def execution_list(request: Request) -> Response:
    records = list(reversed(site_of(request).executions.list()))
    return page(
        request,
        "executions.html",
        live=any(record.status == Status.EXECUTING for record in records),
        records=records,
        checks={record.id: _checks(record) for record in records},
        changed={record.id: _changed_parameters(record) for record in records},
        versions={record.id: _registered_version(record) for record in records},
    )


def execution_detail(request: Request) -> Response:
    site = site_of(request)
    record = site.executions.load(request.path_params["execution_id"])
    policies = [step.detail["retry_policies"] for step in record.steps if "retry_policies" in step.detail]
    common_retries = max(policies, key=policies.count) if policies else []
    pictures = [{"name": path.name, "url": site.file_url(path)} for path in record.pictures(site.workspace)]
    return page(
        request,
        "execution.html",
        live=record.status == Status.EXECUTING,
        record=record,
        graph=build_graph(PIPELINE, record),
        steps=[_step_view(site, step, common_retries) for step in record.steps],
        checks=_checks(record),
        pictures=pictures,
        version=_registered_version(record),
        retries=[retry_policy_text(policy) for policy in common_retries],
        mlflow_run=_mlflow_run(record),
    )


def step_log(request: Request) -> Response:
    record = site_of(request).executions.load(request.path_params["execution_id"])
    try:
        step = record.step(request.path_params["step"])
    except KeyError as error:
        raise HTTPException(404, str(error.args[0])) from None
    if not step.log or not Path(step.log).is_file():
        raise HTTPException(404, f"step {step.name} of execution {record.id} wrote no log")
    return FileResponse(step.log, media_type="text/plain; charset=utf-8")


ROUTES = [
    Route("/executions", execution_list),
    Route("/executions/{execution_id}", execution_detail),
    Route("/executions/{execution_id}/logs/{step}", step_log),
]


def _step_view(site: Site, step: StepRecord, common_retries: list[Any]) -> dict[str, Any]:
    """A step as ``execution.html`` shows it: its outputs' files, its log's tail, its other details, and its
    retry policies where they differ from the execution's common ones."""
    outputs = []
    for name, uri in step.outputs.items():
        folder = site.workspace.local_path(uri) if uri.startswith("s3://") else None
        found = _files_in(folder) if folder else []
        outputs.append(
            {
                "name": name,
                "uri": uri,
                "path": folder,
                "exists": bool(folder and folder.exists()),
                "files": [
                    (_relative(path, folder), site.file_url(path)) for path in found[:MAX_LISTED_FILES]
                ],
                "more": max(0, len(found) - MAX_LISTED_FILES),
            }
        )
    return {
        "record": step,
        "outputs": outputs,
        "log_tail": _tail(Path(step.log)) if step.log else None,
        "detail": {k: v for k, v in step.detail.items() if k not in HIDDEN_DETAIL},
        # The training diagnostics' verdicts as the job printed them (none: every rule passed).
        "diagnostics": step.detail.get("diagnostics", []),
        "diagnosed": step.type in ("Training", "Tuning") and not step.cache_hit,
        "retries": [
            retry_policy_text(policy)
            for policy in step.detail.get("retry_policies", [])
            if step.detail.get("retry_policies") != common_retries
        ],
    }


def _mlflow_run(record: ExecutionRecord) -> dict[str, str] | None:
    """The execution's MLflow run and its page in MLflow's UI (``pipelines experiments``), if it was tracked."""
    run_id = str(record.parameters.get(MLFLOW_RUN_PARAMETER) or NO_RUN)
    return {"id": run_id, "url": mlflow_ui.run_url(run_id)} if run_id != NO_RUN else None


def _checks(record: ExecutionRecord) -> list[dict[str, Any]]:
    """What each condition compared, as the runner recorded it."""
    return [
        check for step in record.steps if step.type == "Condition" for check in step.detail.get("checks", [])
    ]


def _changed_parameters(record: ExecutionRecord) -> dict[str, Any]:
    """The parameters this execution set to other than their local default: what tells runs apart."""
    defaults = PIPELINE.defaults(local=True)
    return {name: value for name, value in record.parameters.items() if defaults.get(name) != value}


def _registered_version(record: ExecutionRecord) -> int | None:
    """The model package version the execution registered, if it got that far."""
    for step in record.steps:
        if step.type == "RegisterModel" and "ModelPackageVersion" in step.detail:
            return int(step.detail["ModelPackageVersion"])
    return None


def _files_in(path: Path) -> list[Path]:
    """An output's files (an output is a folder, or one file such as ``model.tar.gz``), sorted."""
    if path.is_file():
        return [path]
    return sorted(found for found in path.rglob("*") if found.is_file()) if path.is_dir() else []


def _relative(path: Path, output: Path | None) -> str:
    return path.name if output is None or path == output else path.relative_to(output).as_posix()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, read from its end (a training log can be large)."""
    if not path.is_file():
        return "(no log yet)"
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    # Progress bars redraw with carriage returns: keep what the last redraw shows.
    shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(shown[-lines:])
