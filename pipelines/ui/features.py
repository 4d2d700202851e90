"""The page's Features area: a read-only SQL box over the local Feature Store's tables, within
:data:`SQL_LIMITS` (one query past a limit is stopped with a message saying which)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipelines.local.feature_store import FeatureStore, FeatureStoreError
from pipelines.local.query_limits import DEFAULT_ROWS, TYPED_QUERY_LIMITS, parse_row_limit
from pipelines.ui.pages import page, site_of

DEFAULT_SQL = "SELECT sentiment, count(*) AS reviews FROM reviews GROUP BY 1 ORDER BY 1"
SQL_LIMITS = TYPED_QUERY_LIMITS
"""What one query from the SQL box may use, so that a query over a huge product cannot take the machine."""


def features(request: Request) -> Response:
    site = site_of(request)
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
            columns, rows, more = FeatureStore(site.workspace.offline_store_root).query_read_only(
                sql, limit, SQL_LIMITS, site.queries
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


ROUTES = [Route("/features", features)]
