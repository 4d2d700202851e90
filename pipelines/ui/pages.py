"""What every area of the page shares: the :class:`Site` its handlers read from ``request.app.state``, the
template renderer, the form reader and the ``/files`` route that serves the run folder's outputs.

:func:`pipelines.ui.app.create_app` makes one :class:`Site` per app; the handlers of each area
(:mod:`~pipelines.ui.executions`, :mod:`~pipelines.ui.registry`, ...) are plain functions of the request, so
they are typed, testable one by one and share no closure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from model_build.parameters import render
from pipelines.local.events import Subscriber
from pipelines.local.executions import ExecutionStore
from pipelines.local.query_limits import RunningQueries
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace
from pipelines.ui.graph import duration_text
from pipelines.ui.jobs import Jobs

HERE = Path(__file__).resolve().parent
MAX_FORM_BYTES = 64 * 1024
SERVED_FOLDERS = ("s3", "executions", "monitoring")
"""What ``/files`` serves from the run folder: step outputs and logs, never ``endpoints/server.json`` (its
token guards the endpoint server's control routes)."""


@dataclass(frozen=True)
class Site:
    """One page over one run folder: ``app.state.site``. ``jobs`` run the clicks that take long (an approval's
    rollout, a promotion); ``queries`` are the SQL box's running queries, which the server stops on shutdown."""

    workspace: Workspace
    templates: Jinja2Templates
    jobs: Jobs
    queries: RunningQueries
    executions: ExecutionStore
    poll_seconds: float

    @classmethod
    def of(cls, workspace: Workspace, poll_seconds: float) -> Site:
        templates = Jinja2Templates(directory=HERE / "templates")
        templates.env.filters["render"] = render
        templates.env.filters["seconds"] = duration_text
        templates.env.filters["number"] = _number
        return cls(
            workspace,
            templates,
            Jobs(),
            RunningQueries(),
            ExecutionStore(workspace.executions_dir),
            poll_seconds,
        )

    @property
    def group(self) -> str:
        """The model package group the page shows (the project's)."""
        return self.workspace.config.model_package_group_name

    def registry(self) -> ModelRegistry:
        """The registry, opened (use it in a ``with``)."""
        return ModelRegistry(self.workspace.registry_path, self.workspace.config.region)

    def file_url(self, path: Path) -> str:
        """Where ``/files`` serves ``path`` (one of :data:`SERVED_FOLDERS`' files)."""
        return "/files/" + quote(path.resolve().relative_to(self.workspace.root).as_posix())


def site_of(request: Request) -> Site:
    site = request.app.state.site
    if not isinstance(site, Site):
        raise TypeError(f"app.state.site is a {type(site).__name__}, not the page's Site: use create_app")
    return site


def subscribers_of(request: Request) -> Sequence[Subscriber]:
    """Who gets the events of the page's approvals: ``app.state.event_subscribers``, read at each click (a
    test may replace it on a running app)."""
    subscribers: Sequence[Subscriber] = request.app.state.event_subscribers
    return subscribers


def page(request: Request, name: str, status_code: int = 200, live: bool = False, **context: Any) -> Response:
    """The template ``name`` with ``context`` and what every page shows (the run folder, the group);
    ``live``: something is in progress, so ``static/live.js`` reloads the content every ``poll_seconds``."""
    site = site_of(request)
    return site.templates.TemplateResponse(
        request,
        name,
        {
            "workspace": site.workspace,
            "group": site.group,
            "live": live,
            "poll_ms": int(site.poll_seconds * 1000),
            **context,
        },
        status_code=status_code,
    )


async def read_form(request: Request) -> dict[str, str]:
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


def files(request: Request) -> Response:
    """A file of the run folder's outputs (text ones shown as text in the browser)."""
    root = site_of(request).workspace.root
    path = (root / request.path_params["path"]).resolve()
    inside = any(path.is_relative_to(root / folder) for folder in SERVED_FOLDERS)
    if not inside or not path.is_file():
        raise HTTPException(404, f"no file {request.path_params['path']} among the run folder's outputs")
    text = path.suffix in (".log", ".json", ".txt", ".csv", ".jsonl")
    return FileResponse(path, media_type="text/plain; charset=utf-8" if text else None)


ROUTES = [Route("/files/{path:path}", files)]


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)
