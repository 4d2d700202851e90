"""The page's Review view: label the human review queue (:mod:`pipelines.local.review_queue`) one item at a time.

The model's answer and confidence are not in the page until the reviewer has answered (no anchoring): the
answer's POST redirects to the next item with the previous one's outcome shown. Keys 1/2/3 answer
negative/neutral/positive and S skips (``static/review.js``; the buttons work without it). The reviewer's name
is asked once and kept in a cookie; every label records it, with the time. ``/review/progress`` is the bulk
view: progress, agreement, the items the reviewers disagree on, and each version's accuracy on the labeled ones.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pipelines.local.review_queue import DATABASE, LABELS, SKIP, ReviewError, ReviewQueue, progress
from pipelines.local.workspace import Workspace
from pipelines.ui.pages import read_form

REVIEWER_COOKIE = "reviewer"
SHORTCUTS: tuple[tuple[str, str], ...] = (
    *((label, str(n)) for n, label in enumerate(LABELS, start=1)),
    (SKIP, "s"),
)
"""(label, key) of each button, in the order shown."""
REASONS = {
    "low_confidence": "the model was unsure",
    "quality_sample": "a sure answer, checked",
    "unlabeled": "an unlabeled review",
}


def review_routes(workspace: Workspace, page: Callable[..., Response]) -> list[Route]:
    """The Review view's routes; ``page(request, template, status_code=..., **context)`` renders a template."""

    def queue() -> ReviewQueue:
        return ReviewQueue(workspace.root / DATABASE)

    def reviewer_of(request: Request) -> str:
        given = request.query_params.get("reviewer")
        return (given if given is not None else request.cookies.get(REVIEWER_COOKIE, "")).strip()[:80]

    def review_page(request: Request, status_code: int = 200, error: str = "") -> Response:
        reviewer = reviewer_of(request)
        with queue() as store:
            item = store.next_for(reviewer) if reviewer else None
            answered = None
            if reviewer and (text := request.query_params.get("answered", "")).isdigit():
                try:
                    answered = store.item(int(text))
                except ReviewError:
                    answered = None
            state = progress(store.items())
        mine = next((x.label for x in answered.labels if x.reviewer == reviewer), None) if answered else None
        response = page(
            request,
            "review.html",
            status_code=status_code,
            reviewer=reviewer,
            item=item,
            reason=REASONS.get(item.reason, item.reason) if item else "",
            answered=answered if mine is not None else None,
            mine=mine,
            progress=state,
            shortcuts=SHORTCUTS,
            error=error,
        )
        if "reviewer" in request.query_params:
            if reviewer:
                response.set_cookie(REVIEWER_COOKIE, reviewer, samesite="strict", httponly=True)
            else:
                response.delete_cookie(REVIEWER_COOKIE)
        return response

    def review(request: Request) -> Response:
        return review_page(request)

    async def label(request: Request) -> Response:
        try:
            item_id = int(request.path_params["item_id"])
        except ValueError:
            raise HTTPException(
                404, f"{request.path_params['item_id']!r} is not a review item (a number)"
            ) from None
        form = await read_form(request)
        reviewer = form.get("reviewer", "").strip() or request.cookies.get(REVIEWER_COOKIE, "").strip()

        def record() -> None:
            with queue() as store:
                store.label(item_id, reviewer, form.get("label", ""))

        try:
            await run_in_threadpool(record)
        except ReviewError as problem:
            status = 400 if form.get("label", "") not in (*LABELS, SKIP) or not reviewer else 409
            return await run_in_threadpool(review_page, request, status, str(problem))
        return RedirectResponse(f"/review?answered={item_id}", status_code=303)

    def progress_view(request: Request) -> Response:
        with queue() as store:
            items = store.items()
        return page(
            request, "review_progress.html", progress=progress(items), items=items[::-1], reasons=REASONS
        )

    return [
        Route("/review", review),
        Route("/review/progress", progress_view),
        Route("/review/{item_id}", label, methods=["POST"]),
    ]
