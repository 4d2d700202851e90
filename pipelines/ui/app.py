"""The web page's routes: one Starlette app over one run folder, reading the stores the CLI reads.

Executions come from :class:`~pipelines.local.executions.ExecutionStore`, the graph from the shared pipeline
description, versions from the SQLite :class:`~pipelines.local.registry.ModelRegistry`, endpoints from
:func:`model_deploy.local.rollout.describe_endpoints`, features from
:meth:`~pipelines.local.feature_store.FeatureStore.query_read_only`. Approving or rejecting goes through
:func:`~pipelines.local.registry.change_approval`, as ``registry approve`` does, so the same status rules apply
and the same event starts the local rollout.

State changes are POSTs, and :class:`SameOriginOnly` refuses one whose ``Origin`` is not the page's own; the
``Host`` header must name the loopback address, so a page elsewhere cannot reach this one by DNS rebinding.
Pages where something is in progress carry ``data-live``: ``static/live.js`` reloads their content every few
seconds (and a ``<noscript>`` refresh does it without JavaScript).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from model_build.parameters import render
from model_build.pipeline_spec import MLFLOW_RUN_PARAMETER, PIPELINE, retry_policy_text
from model_build.steps.tracking import NO_RUN
from model_deploy.local.rollout import on_model_package_event
from model_deploy.local.state import EndpointStore
from pipelines.local import mlflow_ui
from pipelines.local.events import Subscriber
from pipelines.local.executions import ExecutionNotFound, ExecutionRecord, ExecutionStore, Status
from pipelines.local.feature_store import FeatureStore, FeatureStoreError
from pipelines.local.query_limits import DEFAULT_ROWS, TYPED_QUERY_LIMITS, RunningQueries, parse_row_limit
from pipelines.local.registry import (
    ApprovalStatus,
    ModelPackage,
    ModelRegistry,
    RegistryError,
    change_approval,
)
from pipelines.local.workspace import Workspace
from pipelines.ui.graph import build_graph, duration_text
from pipelines.ui.jobs import DONE, RUNNING, JobRunning, Jobs
from pipelines.ui.review import review_routes

HERE = Path(__file__).resolve().parent
LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]
LOG_TAIL_LINES = 40
MAX_LISTED_FILES = 12
"""Files listed per step output; the rest are counted (the Feature Store's output holds many Parquet files)."""
DEFAULT_SQL = "SELECT sentiment, count(*) AS reviews FROM reviews GROUP BY 1 ORDER BY 1"
SQL_LIMITS = TYPED_QUERY_LIMITS
"""What one query from the SQL box may use, so that a query over a huge product cannot take the machine."""
MAX_FORM_BYTES = 64 * 1024
APPROVAL_WAIT_SECONDS = 30.0
"""How long an Approve click waits for the registry to take the change (the rollout then goes on behind)."""
SERVED_FOLDERS = ("s3", "executions", "monitoring")
"""What ``/files`` serves from the run folder: step outputs and logs, never ``endpoints/server.json`` (its
token guards the endpoint server's control routes)."""


class SameOriginOnly:
    """Refuses a state-changing request (anything but GET/HEAD/OPTIONS) that another site's page could send:
    its ``Origin`` (or, lacking one, its ``Referer``) must be this page's own ``http://<Host>``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
            origin = headers.get("origin")
            referer = headers.get("referer", "")
            allowed = origin == own if origin else referer == own or referer.startswith(own + "/")
            if not allowed:
                said = origin or referer or "no Origin header"
                response = PlainTextResponse(
                    f"Refused: a cross-site request ({said}) may not change anything here; use the page at {own}.",
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    workspace: Workspace,
    poll_seconds: float = 2.0,
    on_ready: Callable[[], None] | None = None,
    subscribers: Sequence[Subscriber] = (on_model_package_event,),
) -> Starlette:
    """The page for ``workspace``'s run folder; ``poll_seconds``: how often a live page reloads its content;
    ``on_ready``: called once the app has started (to print its URL); ``subscribers``: who gets the events of
    the page's approvals (``app.state.event_subscribers``; the local rollout, as ``registry approve``'s)."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["render"] = render
    templates.env.filters["seconds"] = duration_text
    templates.env.filters["number"] = _number
    jobs = Jobs()
    queries = RunningQueries()
    group = workspace.config.model_package_group_name
    executions = ExecutionStore(workspace.executions_dir)

    def page(
        request: Request, name: str, status_code: int = 200, live: bool = False, **context: Any
    ) -> Response:
        return templates.TemplateResponse(
            request,
            name,
            {
                "workspace": workspace,
                "group": group,
                "live": live,
                "poll_ms": int(poll_seconds * 1000),
                **context,
            },
            status_code=status_code,
        )

    def registry() -> ModelRegistry:
        return ModelRegistry(workspace.registry_path, workspace.config.region)

    def file_url(path: Path) -> str:
        return "/files/" + quote(path.resolve().relative_to(workspace.root).as_posix())

    # ------------------------------------------------------------------------------------------- executions
    def execution_list(request: Request) -> Response:
        records = list(reversed(executions.list()))
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
        record = executions.load(request.path_params["execution_id"])
        policies = [step.detail["retry_policies"] for step in record.steps if "retry_policies" in step.detail]
        common_retries = max(policies, key=policies.count) if policies else []
        steps = []
        for step in record.steps:
            outputs = []
            for name, uri in step.outputs.items():
                folder = workspace.local_path(uri) if uri.startswith("s3://") else None
                found = _files_in(folder) if folder else []
                outputs.append(
                    {
                        "name": name,
                        "uri": uri,
                        "path": folder,
                        "exists": bool(folder and folder.exists()),
                        "files": [
                            (_relative(path, folder), file_url(path)) for path in found[:MAX_LISTED_FILES]
                        ],
                        "more": max(0, len(found) - MAX_LISTED_FILES),
                    }
                )
            steps.append(
                {
                    "record": step,
                    "outputs": outputs,
                    "log_tail": _tail(Path(step.log)) if step.log else None,
                    "detail": {
                        k: v
                        for k, v in step.detail.items()
                        if k not in ("metric_series", "checks", "outcome", "retry_policies", "diagnostics")
                    },
                    # The training diagnostics' verdicts as the job printed them (none: every rule passed).
                    "diagnostics": step.detail.get("diagnostics", []),
                    "diagnosed": step.type in ("Training", "Tuning") and not step.cache_hit,
                    "retries": [
                        retry_policy_text(policy)
                        for policy in step.detail.get("retry_policies", [])
                        if step.detail.get("retry_policies") != common_retries
                    ],
                }
            )
        pictures = [{"name": path.name, "url": file_url(path)} for path in record.pictures(workspace)]
        return page(
            request,
            "execution.html",
            live=record.status == Status.EXECUTING,
            record=record,
            graph=build_graph(PIPELINE, record),
            steps=steps,
            checks=_checks(record),
            pictures=pictures,
            version=_registered_version(record),
            retries=[retry_policy_text(policy) for policy in common_retries],
            mlflow_run=_mlflow_run(record),
        )

    def step_log(request: Request) -> Response:
        record = executions.load(request.path_params["execution_id"])
        try:
            step = record.step(request.path_params["step"])
        except KeyError as error:
            raise HTTPException(404, str(error.args[0])) from None
        if not step.log or not Path(step.log).is_file():
            raise HTTPException(404, f"step {step.name} of execution {record.id} wrote no log")
        return FileResponse(step.log, media_type="text/plain; charset=utf-8")

    def files(request: Request) -> Response:
        path = (workspace.root / request.path_params["path"]).resolve()
        inside = any(path.is_relative_to(workspace.root / folder) for folder in SERVED_FOLDERS)
        if not inside or not path.is_file():
            raise HTTPException(404, f"no file {request.path_params['path']} among the run folder's outputs")
        text = path.suffix in (".log", ".json", ".txt", ".csv", ".jsonl")
        return FileResponse(path, media_type="text/plain; charset=utf-8" if text else None)

    # ------------------------------------------------------------------------------------------- registry
    def registry_list(request: Request) -> Response:
        with registry() as opened:
            packages = list(reversed(opened.list(group)))
            others = [name for name in opened.groups() if name != group]
        return page(
            request,
            "registry.html",
            live=jobs.running(),
            packages=packages,
            others=others,
            jobs={package.version: jobs.get(f"approval-{package.version}") for package in packages},
        )

    def version_page(request: Request, version: int, status_code: int = 200, error: str = "") -> Response:
        with registry() as opened:
            package = opened.describe(group, version)
        try:
            record: ExecutionRecord | None = executions.load(package.lineage.execution_id)
        except ExecutionNotFound:
            record = None
        pictures = (
            [{"name": path.name, "url": file_url(path)} for path in record.pictures(workspace)]
            if record
            else []
        )
        serving = [
            endpoint
            for endpoint in EndpointStore(workspace.endpoints_dir).load().values()
            if endpoint.model_package_arn == package.arn
        ]
        job = jobs.get(f"approval-{version}")
        return page(
            request,
            "version.html",
            status_code=status_code,
            live=bool(job and job.state == RUNNING),
            package=package,
            record=record,
            pictures=pictures,
            evaluation=_evaluation_json(workspace, package),
            baselines=_baselines(package),
            serving=serving,
            job=job,
            error=error,
            mlflow_run=(
                {
                    "id": package.lineage.mlflow_run_id,
                    "url": mlflow_ui.run_url(package.lineage.mlflow_run_id),
                }
                if package.lineage.mlflow_run_id
                else None
            ),
            can_approve=package.approval_status == ApprovalStatus.PENDING,
            can_reject=package.approval_status != ApprovalStatus.REJECTED,
        )

    def version_detail(request: Request) -> Response:
        return version_page(request, _version(request))

    async def approval(request: Request) -> Response:
        version = _version(request)
        form = await _form(request)
        action = form.get("action", "")
        status = {"approve": ApprovalStatus.APPROVED, "reject": ApprovalStatus.REJECTED}.get(action)
        if status is None:
            raise HTTPException(400, f"action must be 'approve' or 'reject', not {action!r}")
        note = form.get("note", "").strip() or None
        before = (await run_in_threadpool(_describe, registry, group, version)).approval_status
        try:
            job = jobs.start(
                f"approval-{version}",
                f"{action.title()} version {version}",
                lambda: change_approval(workspace, version, status, note, app.state.event_subscribers)[1],
            )
        except JobRunning as error:
            return await run_in_threadpool(version_page, request, version, 409, str(error))
        # The registry commits the change before it delivers the event; the rollout that follows can take
        # minutes, so the page returns once the change is in (or refused) and shows the rollout as it runs.
        deadline = time.monotonic() + APPROVAL_WAIT_SECONDS
        while not job.finished.is_set() and time.monotonic() < deadline:
            if (await run_in_threadpool(_describe, registry, group, version)).approval_status != before:
                break
            await asyncio.sleep(0.05)
        if job.finished.is_set() and isinstance(job.raised, RegistryError):
            return await run_in_threadpool(version_page, request, version, 409, str(job.raised))
        return RedirectResponse(f"/registry/{version}", status_code=303)

    # ------------------------------------------------------------------------------------------- endpoints
    def endpoints_page(
        request: Request, answers: dict[str, Any] | None = None, status_code: int = 200, error: str = ""
    ) -> Response:
        from model_deploy.local.rollout import STAGES, RolloutError, describe_endpoints

        try:
            described, server = describe_endpoints(workspace)
        except RolloutError as problem:
            described, server, error = [], None, error or str(problem)
        promote = jobs.get("promote")
        rejected = serving_rejected(described)
        if promote is not None and promote.state == DONE and promote.ended is not None:
            ended = datetime.fromisoformat(promote.ended)
            changed_since = any(
                datetime.fromisoformat(entry["time"].replace("Z", "+00:00")) > ended
                for endpoint in described
                for entry in endpoint.get("History") or []
            )
            if rejected or changed_since:
                promote = None  # a "Done" that no longer describes what serves
        return page(
            request,
            "endpoints.html",
            status_code=status_code,
            live=bool(promote and promote.state == RUNNING) or jobs.running(),
            endpoints=described,
            rejected=rejected,
            prod_version=next((e["Version"] for e in described if e.get("Stage") == STAGES[-1]), None),
            server=server,
            answers=answers or {},
            promote=promote,
            error=error,
        )

    def serving_rejected(described: list[dict[str, Any]]) -> dict[str, int]:
        """Endpoint -> the Rejected version it still serves: said on every page that shows the endpoint."""
        found: dict[str, int] = {}
        with registry() as opened:
            for endpoint in described:
                if not endpoint.get("Version"):
                    continue
                version = int(endpoint["Version"])
                try:
                    status = opened.describe(group, version).approval_status
                except RegistryError:
                    continue
                if status == ApprovalStatus.REJECTED:
                    found[str(endpoint["EndpointName"])] = version
        return found

    # ------------------------------------------------------------------------------------------- monitoring
    def monitoring(request: Request) -> Response:
        from model_deploy.local.monitoring import MonitoringError, MonitoringRunStore, monitoring_dir

        error = ""
        try:
            runs = MonitoringRunStore(monitoring_dir(workspace)).list()
        except MonitoringError as problem:
            runs, error = [], str(problem)
        by_endpoint: dict[str, list[Any]] = {}
        for run in reversed(runs):  # newest first
            by_endpoint.setdefault(run.endpoint, []).append(run)
        pictures = {
            name: file_url(Path(found[0].picture))
            for name, found in by_endpoint.items()
            if Path(found[0].picture).is_file() and Path(found[0].picture).is_relative_to(workspace.root)
        }
        return page(request, "monitoring.html", by_endpoint=by_endpoint, pictures=pictures, error=error)

    def endpoints(request: Request) -> Response:
        return endpoints_page(request)

    async def predict(request: Request) -> Response:
        from model_deploy.local.rollout import RolloutError, invoke_reviews

        name = request.path_params["name"]
        texts = [line.strip() for line in (await _form(request)).get("text", "").splitlines() if line.strip()]
        if not texts:
            return await run_in_threadpool(endpoints_page, request, None, 400, "Type a review to send.")
        try:
            results, variant = await run_in_threadpool(invoke_reviews, workspace, name, texts)
        except RolloutError as error:
            answer: dict[str, Any] = {"texts": texts, "error": str(error)}
            return await run_in_threadpool(endpoints_page, request, {name: answer}, 502)
        from model_deploy.local.state import EndpointStore

        record = EndpointStore(workspace.endpoints_dir).load().get(name)
        answer = {
            "texts": texts,
            "results": list(zip(texts, results, strict=True)),
            "variant": variant,
            "version": record.version if record else None,
        }
        return await run_in_threadpool(endpoints_page, request, {name: answer})

    async def promote(request: Request) -> Response:
        from model_deploy.local.rollout import STAGES, roll_out

        def work() -> list[str]:
            result = roll_out(workspace, STAGES[1])
            return [f"{result.endpoint_name}: {result.reason}"] if result.outcome == "Failed" else []

        try:
            jobs.start("promote", "Promote staging to prod", work)
        except JobRunning as error:
            return await run_in_threadpool(endpoints_page, request, None, 409, str(error))
        return RedirectResponse("/endpoints", status_code=303)

    # ------------------------------------------------------------------------------------------- features
    def features(request: Request) -> Response:
        sql = request.query_params.get("sql", DEFAULT_SQL)
        limit_text = request.query_params.get("limit", str(DEFAULT_ROWS))
        columns: list[str] = []
        rows: list[tuple[Any, ...]] = []
        more, error = False, ""
        try:
            limit = parse_row_limit(limit_text)
        except ValueError as problem:
            text = str(problem)
            limit, error = DEFAULT_ROWS, f"{text[:1].upper()}{text[1:]}."
        if not error and sql.strip():
            try:
                columns, rows, more = FeatureStore(workspace.offline_store_root).query_read_only(
                    sql, limit, SQL_LIMITS, queries
                )
            except FeatureStoreError as problem:
                error = str(problem)
        return page(
            request,
            "features.html",
            status_code=400 if error else 200,
            sql=sql,
            limit=limit,
            columns=columns,
            rows=rows,
            more=more,
            error=error,
            limits=SQL_LIMITS,
        )

    # ------------------------------------------------------------------------------------------- errors
    async def not_found(request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if status != 404:
            return page(request, "error.html", status_code=status, message=detail, heading="Bad request")
        return page(request, "error.html", status_code=status, message=detail, heading="Not found")

    async def refused(request: Request, exc: Exception) -> Response:
        status = 404 if "has no version" in str(exc) else 409
        heading = "Not found" if status == 404 else "Refused"
        return page(request, "error.html", status_code=status, message=str(exc), heading=heading)

    def home(request: Request) -> Response:
        return RedirectResponse("/executions", status_code=307)

    routes = [
        Route("/", home),
        Route("/executions", execution_list),
        Route("/executions/{execution_id}", execution_detail),
        Route("/executions/{execution_id}/logs/{step}", step_log),
        Route("/files/{path:path}", files),
        Route("/registry", registry_list),
        Route("/registry/{version}", version_detail),
        Route("/registry/{version}/approval", approval, methods=["POST"]),
        Route("/endpoints", endpoints),
        Route("/endpoints/promote", promote, methods=["POST"]),
        Route("/endpoints/{name}/predict", predict, methods=["POST"]),
        Route("/features", features),
        Route("/monitoring", monitoring),
        *review_routes(workspace, page),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: not_found,
        ExecutionNotFound: not_found,
        RegistryError: refused,
    }

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if on_ready is not None:
            on_ready()
        yield

    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS, www_redirect=False),
            Middleware(SameOriginOnly),
        ],
        exception_handlers=handlers,
    )
    app.state.jobs = jobs
    app.state.queries = queries
    app.state.event_subscribers = list(subscribers)
    return app


# ------------------------------------------------------------------------------------------------- helpers
def _describe(opener: Callable[[], ModelRegistry], group: str, version: int) -> ModelPackage:
    with opener() as opened:
        return opened.describe(group, version)


def _version(request: Request) -> int:
    text = request.path_params["version"]
    try:
        return int(text)
    except ValueError:
        raise HTTPException(404, f"{text!r} is not a model package version (a whole number)") from None


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form, the only kind these pages send (Starlette's ``request.form()`` would need
    python-multipart for a parser the standard library has)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(
            415, f"send an application/x-www-form-urlencoded form, not {content_type or 'nothing'}"
        )
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"the form is {len(body)} bytes; at most {MAX_FORM_BYTES} are read")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _checks(record: ExecutionRecord) -> list[dict[str, Any]]:
    """What each condition compared, as the runner recorded it."""
    return [
        check for step in record.steps if step.type == "Condition" for check in step.detail.get("checks", [])
    ]


def _mlflow_run(record: ExecutionRecord) -> dict[str, str] | None:
    """The execution's MLflow run and its page in MLflow's UI (``pipelines experiments``), if it was tracked."""
    run_id = str(record.parameters.get(MLFLOW_RUN_PARAMETER) or NO_RUN)
    return {"id": run_id, "url": mlflow_ui.run_url(run_id)} if run_id != NO_RUN else None


def _changed_parameters(record: ExecutionRecord) -> dict[str, Any]:
    """The parameters this execution set to other than their local default: what tells runs apart."""
    defaults = PIPELINE.defaults(local=True)
    return {name: value for name, value in record.parameters.items() if defaults.get(name) != value}


def _registered_version(record: ExecutionRecord) -> int | None:
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


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)
