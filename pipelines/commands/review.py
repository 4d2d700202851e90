"""``python -m pipelines review fill|add|list|label|export``: the human review queue from the command line.

The queue itself is :mod:`pipelines.local.review_queue`; the page's Review view (``pipelines ui``) labels the
same store. An endpoint is named by its stage (``staging``, ``prod``, the default) or its name; its stage file's
``human_review`` block decides which answers are queued and how many reviewers each item needs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from model_deploy.local.state import EndpointStore
from model_deploy.stage_config import STAGES, load_stage
from pipelines.local.review_queue import (
    DATABASE,
    LABELS,
    SKIP,
    Item,
    ReviewError,
    ReviewQueue,
    add_unlabeled_items,
    capture_window,
    export,
    progress,
    read_captures,
)
from pipelines.local.workspace import Workspace

NAME = "review"
DEFAULT_SINCE = "1d"
EXPORT_PREFIX = "human-labels-"


def queue_of(workspace: Workspace) -> ReviewQueue:
    return ReviewQueue(workspace.root / DATABASE)


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``review`` and its subcommands on the CLI's subparsers."""
    review = subparsers.add_parser(NAME, parents=parents, help="The human review (labeling) queue.")
    actions = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    fill = actions.add_parser(
        "fill", parents=parents, help="Queue the unsure (and a sample of the sure) captured answers."
    )
    fill.add_argument("--endpoint", help="A stage (staging, prod) or an endpoint name (default: prod).")
    fill.add_argument(
        "--since", default=DEFAULT_SINCE, help=f"Start: ISO-8601 or an age (default: {DEFAULT_SINCE})."
    )
    fill.add_argument("--until", help="End of the window (default: now).")
    add = actions.add_parser("add", parents=parents, help="Queue a CSV of unlabeled reviews.")
    add.add_argument("--input", type=Path, required=True, help="A CSV with a 'Review Text' column.")
    add.add_argument("--endpoint", help="Whose stage's labels_per_item applies (default: prod).")
    listing = actions.add_parser("list", parents=parents, help="Items, progress, agreement, accuracy.")
    listing.add_argument("--open", action="store_true", help="Only the items still to label.")
    label = actions.add_parser("label", parents=parents, help="Record one reviewer's label for an item.")
    label.add_argument("item", type=int, help="The item's id (see `review list`).")
    label.add_argument("label", help=f"One of {', '.join(LABELS)} or {SKIP}.")
    label.add_argument("--reviewer", required=True, help="Who labels (recorded with the label).")
    out = actions.add_parser("export", parents=parents, help="Write the consolidated labels as a new CSV.")
    out.add_argument(
        "--output",
        type=Path,
        help="The new CSV (default: human-labels-<time>.csv under the data bucket's raw-reviews prefix).",
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    with queue_of(workspace) as queue:
        match args.review_command:
            case "fill":
                return _fill(args, workspace, queue)
            case "add":
                _, stage = endpoint_and_stage(workspace, args.endpoint)
                added, read = add_unlabeled_items(queue, args.input, load_stage(stage).human_review)
                print(
                    f"{args.input}: {read} reviews read, {added} new in the queue ({read - added} were in it)"
                )
                return 0
            case "list":
                _list(queue, args.open)
                return 0
            case "label":
                item = queue.label(args.item, args.reviewer, args.label)
                state = f"consolidated as {item.consolidated}" if item.consolidated else "open"
                print(
                    f"item {item.id}: {args.reviewer} answered {args.label}; {len(item.answers)} of {item.labels_per_item} answers, {state}"
                )
                return 0
            case "export":
                output = args.output or default_export_path(workspace)
                count = export(queue, output)
                print(f"{count} human labels written to {output}")
                print(
                    "a run trains on them when its input holds this file: put the rest of the data beside it "
                    f"and run `python -m pipelines run --local --input {output.parent}`"
                )
                return 0
    raise AssertionError(args.review_command)


def default_export_path(workspace: Workspace) -> Path:
    """A new file under the raw-reviews prefix, where the pipeline's input is read from on AWS."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return workspace.local_path(workspace.raw_reviews_uri) / f"{EXPORT_PREFIX}{stamp}.csv"


def endpoint_and_stage(workspace: Workspace, endpoint: str | None) -> tuple[str, str]:
    """(endpoint name, stage) of a stage or endpoint name; the default is prod."""
    requested = endpoint or STAGES[-1]
    if requested in STAGES:
        return workspace.config.endpoint_name(requested), requested
    record = EndpointStore(workspace.endpoints_dir).load().get(requested)
    if record is None:
        known = ", ".join(sorted(EndpointStore(workspace.endpoints_dir).load())) or "none yet"
        raise ReviewError(
            f"no local endpoint {requested}; name a stage ({', '.join(STAGES)}) or one of: {known}"
        )
    return record.name, record.stage


def _fill(args: argparse.Namespace, workspace: Workspace, queue: ReviewQueue) -> int:
    name, stage = endpoint_and_stage(workspace, args.endpoint)
    settings = load_stage(stage).human_review
    record = EndpointStore(workspace.endpoints_dir).load().get(name)

    def version_at(moment: datetime) -> int | None:
        """The version that took the traffic last before ``moment``."""
        served = [
            d.version
            for d in (record.history if record else [])
            if d.outcome == "Deployed" and datetime.fromisoformat(d.time) <= moment
        ]
        return served[-1] if served else None

    now = datetime.now(UTC)
    reader = capture_window()
    since = reader.parse_time(args.since, now)
    until = reader.parse_time(args.until, now) if args.until else now
    captures = workspace.data_capture_root(stage) / name
    candidates, result = read_captures(captures, name, settings, since, until, version_at)
    result.added = queue.enqueue(candidates, settings.labels_per_item)
    print(
        f"{name}: {result.lines} capture lines, {result.reviews} answered reviews from "
        f"{since.isoformat(timespec='seconds')} to {until.isoformat(timespec='seconds')}; "
        f"{result.candidates} to review (top probability below {settings.confidence_threshold}, or in the "
        f"{settings.sample_share:.0%} sample), {result.added} new in the queue"
    )
    if not result.lines:
        print(
            f"  no capture lines under {captures} in that window (is the endpoint capturing? try --since 7d)"
        )
    for problem in result.unreadable:
        print(f"  unreadable: {problem}")
    if result.unreadable:
        print(f"  {len(result.unreadable)} line(s) skipped; the capture files are unchanged")
    return 0


def _list(queue: ReviewQueue, only_open: bool) -> None:
    items = queue.items()
    state = progress(items)
    print(
        f"{state.items} items: {state.consolidated} consolidated, {state.open} open; {state.labels} labels, "
        f"{state.skips} skips; agreement "
        + (f"{state.agreement:.0%}" if state.agreement is not None else "n/a (no item has two answers)")
    )
    for version in state.by_version:
        print(
            f"  version {version.version if version.version is not None else '?'}: "
            f"{version.correct} of {version.labeled} answers right ({version.accuracy:.0%})"
        )
    for item in state.disagreements:
        votes = ", ".join(f"{a.reviewer}: {a.label}" for a in item.answers)
        print(f"  disagreement on item {item.id}: {votes} -> {item.consolidated or 'tied, needs one more'}")
    shown = [item for item in items if not only_open or item.consolidated is None]
    for item in shown:
        print(_line(item))


def _line(item: Item) -> str:
    model = (
        f"{item.predicted} {item.probability:.2f}" if item.predicted and item.probability is not None else "-"
    )
    text = " ".join(item.text.split())
    return (
        f"{item.id:>5}  {item.reason:<15} v{item.version if item.version is not None else '-':<3} {model:<14} "
        f"{len(item.answers)}/{item.labels_per_item}  {item.consolidated or 'open':<9} "
        f"{text[:60] + '...' if len(text) > 60 else text}"
    )
