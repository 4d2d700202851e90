"""The page's Endpoints area: the local staging and prod endpoints (what each serves, its history), a box to
send them reviews, and the Promote button (the manual gate from staging to prod, run as a job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pipelines.local.registry import ApprovalStatus, RegistryError
from pipelines.ui.jobs import DONE, RUNNING, JobRunning
from pipelines.ui.pages import Site, page, read_form, site_of

PROMOTE_JOB = "promote"


def endpoints(request: Request) -> Response:
    return endpoints_page(request)


async def predict(request: Request) -> Response:
    from model_deploy.local.rollout import RolloutError, invoke_reviews
    from model_deploy.local.state import EndpointStore

    workspace = site_of(request).workspace
    name = request.path_params["name"]
    texts = [line.strip() for line in (await read_form(request)).get("text", "").splitlines() if line.strip()]
    if not texts:
        return await run_in_threadpool(endpoints_page, request, None, 400, "Type a review to send.")
    try:
        results, variant = await run_in_threadpool(invoke_reviews, workspace, name, texts)
    except RolloutError as error:
        answer: dict[str, Any] = {"texts": texts, "error": str(error)}
        return await run_in_threadpool(endpoints_page, request, {name: answer}, 502)
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

    site = site_of(request)

    def work() -> list[str]:
        result = roll_out(site.workspace, STAGES[1])
        return [f"{result.endpoint_name}: {result.reason}"] if result.outcome == "Failed" else []

    try:
        site.jobs.start(PROMOTE_JOB, "Promote staging to prod", work)
    except JobRunning as error:
        return await run_in_threadpool(endpoints_page, request, None, 409, str(error))
    return RedirectResponse("/endpoints", status_code=303)


ROUTES = [
    Route("/endpoints", endpoints),
    Route("/endpoints/promote", promote, methods=["POST"]),
    Route("/endpoints/{name}/predict", predict, methods=["POST"]),
]


def endpoints_page(
    request: Request, answers: dict[str, Any] | None = None, status_code: int = 200, error: str = ""
) -> Response:
    """The endpoints, with ``answers`` (endpoint -> what the reviews sent to it got) and ``error`` shown."""
    from model_deploy.local.rollout import STAGES, RolloutError, describe_endpoints

    site = site_of(request)
    try:
        described, server = describe_endpoints(site.workspace)
    except RolloutError as problem:
        described, server, error = [], None, error or str(problem)
    promotion = site.jobs.get(PROMOTE_JOB)
    rejected = _serving_rejected(site, described)
    if promotion is not None and promotion.state == DONE and promotion.ended is not None:
        ended = datetime.fromisoformat(promotion.ended)
        changed_since = any(
            datetime.fromisoformat(entry["time"].replace("Z", "+00:00")) > ended
            for endpoint in described
            for entry in endpoint.get("History") or []
        )
        if rejected or changed_since:
            promotion = None  # a "Done" that no longer describes what serves
    return page(
        request,
        "endpoints.html",
        status_code=status_code,
        live=bool(promotion and promotion.state == RUNNING) or site.jobs.running(),
        endpoints=described,
        rejected=rejected,
        prod_version=next((e["Version"] for e in described if e.get("Stage") == STAGES[-1]), None),
        server=server,
        answers=answers or {},
        promote=promotion,
        error=error,
    )


def _serving_rejected(site: Site, described: list[dict[str, Any]]) -> dict[str, int]:
    """Endpoint -> the Rejected version it still serves: said on every page that shows the endpoint."""
    found: dict[str, int] = {}
    with site.registry() as opened:
        for endpoint in described:
            if not endpoint.get("Version"):
                continue
            version = int(endpoint["Version"])
            try:
                status = opened.describe(site.group, version).approval_status
            except RegistryError:
                continue
            if status == ApprovalStatus.REJECTED:
                found[str(endpoint["EndpointName"])] = version
    return found
