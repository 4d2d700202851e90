"""The web page: one Starlette app over one run folder, reading the stores the CLI reads.

Each area of the page is a module of plain request handlers and its ``ROUTES``: executions
(:mod:`~pipelines.ui.executions`, from the :class:`~pipelines.local.executions.ExecutionStore` and the shared
pipeline description), the registry (:mod:`~pipelines.ui.registry`, the SQLite
:class:`~pipelines.local.registry.ModelRegistry` and its Approve/Reject buttons), endpoints
(:mod:`~pipelines.ui.endpoints`, :func:`model_deploy.local.rollout.describe_endpoints`), features
(:mod:`~pipelines.ui.features`, the read-only SQL box), monitoring (:mod:`~pipelines.ui.monitoring`) and
review (:mod:`~pipelines.ui.review`). They read what they share from ``request.app.state``
(:class:`~pipelines.ui.pages.Site`); :func:`create_app` only composes them.

State changes are POSTs, and :class:`SameOriginOnly` refuses one whose ``Origin`` is not the page's own; the
``Host`` header must name the loopback address, so a page elsewhere cannot reach this one by DNS rebinding.
Pages where something is in progress carry ``data-live``: ``static/live.js`` reloads their content every few
seconds (and a ``<noscript>`` refresh does it without JavaScript).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from model_deploy.local.rollout import on_model_package_event
from pipelines.local.events import Subscriber
from pipelines.local.executions import ExecutionNotFound
from pipelines.local.registry import RegistryError
from pipelines.local.workspace import Workspace
from pipelines.ui import endpoints, executions, features, monitoring, pages, registry
from pipelines.ui.pages import HERE, Site, page
from pipelines.ui.review import review_routes

LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]


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
    site = Site.of(workspace, poll_seconds)
    routes: list[BaseRoute] = [
        Route("/", home),
        *executions.ROUTES,
        *pages.ROUTES,
        *registry.ROUTES,
        *endpoints.ROUTES,
        *features.ROUTES,
        *monitoring.ROUTES,
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
    app.state.site = site
    app.state.jobs = site.jobs  # what the server (shutdown) and the tests (waiting for a click's job) reach
    app.state.queries = site.queries
    app.state.event_subscribers = list(subscribers)
    return app


def home(request: Request) -> Response:
    return RedirectResponse("/executions", status_code=307)


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
