"""The page's Registry area: the group's versions, one version (its evaluation, pictures, where it serves)
and its Approve/Reject buttons.

Approving or rejecting goes through :func:`~pipelines.local.registry.change_approval`, as ``registry approve``
does, so the same status rules apply and the same event reaches the subscribers (``app.state.event_subscribers``:
the local rollout). The registry commits the change before it delivers the event; the rollout that follows can
take minutes, so the click runs as a job and the page returns once the change is in (or refused).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from model_deploy.local.state import EndpointStore
from pipelines.local import mlflow_ui
from pipelines.local.executions import ExecutionNotFound, ExecutionRecord
from pipelines.local.registry import ApprovalStatus, ModelPackage, RegistryError, change_approval
from pipelines.local.workspace import Workspace
from pipelines.ui.jobs import RUNNING, JobRunning
from pipelines.ui.pages import Site, page, read_form, site_of, subscribers_of

APPROVAL_WAIT_SECONDS = 30.0
"""How long an Approve click waits for the registry to take the change (the rollout then goes on behind)."""
ACTIONS = {"approve": ApprovalStatus.APPROVED, "reject": ApprovalStatus.REJECTED}
"""The approval form's ``action`` -> the status it asks for."""


def registry_list(request: Request) -> Response:
    site = site_of(request)
    with site.registry() as opened:
        packages = list(reversed(opened.list(site.group)))
        others = [name for name in opened.groups() if name != site.group]
    return page(
        request,
        "registry.html",
        live=site.jobs.running(),
        packages=packages,
        others=others,
        jobs={package.version: site.jobs.get(approval_job(package.version)) for package in packages},
    )


def version_detail(request: Request) -> Response:
    return version_page(request, _version(request))


async def approval(request: Request) -> Response:
    site = site_of(request)
    version = _version(request)
    form = await read_form(request)
    action = form.get("action", "")
    status = ACTIONS.get(action)
    if status is None:
        raise HTTPException(400, f"action must be 'approve' or 'reject', not {action!r}")
    note = form.get("note", "").strip() or None
    subscribers = subscribers_of(request)
    before = (await run_in_threadpool(_describe, site, version)).approval_status
    try:
        job = site.jobs.start(
            approval_job(version),
            f"{action.title()} version {version}",
            lambda: change_approval(site.workspace, version, status, note, subscribers)[1],
        )
    except JobRunning as error:
        return await run_in_threadpool(version_page, request, version, 409, str(error))
    deadline = time.monotonic() + APPROVAL_WAIT_SECONDS
    while not job.finished.is_set() and time.monotonic() < deadline:
        if (await run_in_threadpool(_describe, site, version)).approval_status != before:
            break
        await asyncio.sleep(0.05)
    if job.finished.is_set() and isinstance(job.raised, RegistryError):
        return await run_in_threadpool(version_page, request, version, 409, str(job.raised))
    return RedirectResponse(f"/registry/{version}", status_code=303)


ROUTES = [
    Route("/registry", registry_list),
    Route("/registry/{version}", version_detail),
    Route("/registry/{version}/approval", approval, methods=["POST"]),
]


def version_page(request: Request, version: int, status_code: int = 200, error: str = "") -> Response:
    """One version: what the page shows, and what a refused click shows again with ``error``."""
    site = site_of(request)
    package = _describe(site, version)
    try:
        record: ExecutionRecord | None = site.executions.load(package.lineage.execution_id)
    except ExecutionNotFound:
        record = None
    pictures = (
        [{"name": path.name, "url": site.file_url(path)} for path in record.pictures(site.workspace)]
        if record
        else []
    )
    serving = [
        endpoint
        for endpoint in EndpointStore(site.workspace.endpoints_dir).load().values()
        if endpoint.model_package_arn == package.arn
    ]
    job = site.jobs.get(approval_job(version))
    return page(
        request,
        "version.html",
        status_code=status_code,
        live=bool(job and job.state == RUNNING),
        package=package,
        record=record,
        pictures=pictures,
        evaluation=_evaluation_json(site.workspace, package),
        baselines=_baselines(package),
        serving=serving,
        job=job,
        error=error,
        can_approve=package.approval_status == ApprovalStatus.PENDING,
        can_reject=package.approval_status != ApprovalStatus.REJECTED,
        mlflow_run=(
            {"id": package.lineage.mlflow_run_id, "url": mlflow_ui.run_url(package.lineage.mlflow_run_id)}
            if package.lineage.mlflow_run_id
            else None
        ),
    )


def approval_job(version: int) -> str:
    """The name of the job an Approve or Reject click of ``version`` runs as (one at a time per version)."""
    return f"approval-{version}"


def _describe(site: Site, version: int) -> ModelPackage:
    with site.registry() as opened:
        return opened.describe(site.group, version)


def _version(request: Request) -> int:
    text = request.path_params["version"]
    try:
        return int(text)
    except ValueError:
        raise HTTPException(404, f"{text!r} is not a model package version (a whole number)") from None


def _evaluation_json(workspace: Workspace, package: ModelPackage) -> str | None:
    if not package.metrics_report_uri:
        return None
    try:
        path = workspace.local_path(package.metrics_report_uri)
    except ValueError:
        return None
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _baselines(package: ModelPackage) -> list[dict[str, Any]]:
    """Each baseline evaluation reported beside the model (majority class, ...), with accuracy and F1."""
    found = package.metrics.get("baselines", {})
    rows = []
    for name, values in found.items() if isinstance(found, dict) else ():
        if isinstance(values, dict):
            rows.append(
                {
                    "name": name,
                    **{
                        metric: values.get(metric, {}).get("value")
                        for metric in ("accuracy", "f1_macro")
                        if isinstance(values.get(metric), dict)
                    },
                }
            )
    return rows
