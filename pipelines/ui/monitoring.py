"""The page's Monitoring area: each endpoint's monitoring runs, newest first, with the newest one's picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipelines.ui.pages import page, site_of


def monitoring(request: Request) -> Response:
    from model_deploy.local.monitoring import MonitoringError, MonitoringRunStore, monitoring_dir

    site = site_of(request)
    error = ""
    try:
        runs = MonitoringRunStore(monitoring_dir(site.workspace)).list()
    except MonitoringError as problem:
        runs, error = [], str(problem)
    by_endpoint: dict[str, list[Any]] = {}
    for run in reversed(runs):  # newest first
        by_endpoint.setdefault(run.endpoint, []).append(run)
    pictures = {
        name: site.file_url(Path(found[0].picture))
        for name, found in by_endpoint.items()
        if Path(found[0].picture).is_file() and Path(found[0].picture).is_relative_to(site.workspace.root)
    }
    return page(request, "monitoring.html", by_endpoint=by_endpoint, pictures=pictures, error=error)


ROUTES = [Route("/monitoring", monitoring)]
