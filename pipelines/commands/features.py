"""``python -m pipelines features query SQL | get REVIEW_ID | delete REVIEW_ID``: the local Feature Store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines.commands.common import print_table
from pipelines.local.feature_store import FeatureStore
from pipelines.local.query_limits import DEFAULT_ROWS, MAX_ROWS, parse_row_limit
from pipelines.local.workspace import Workspace

NAME = "features"
CELL_WIDTH = 60
"""Characters of a value a query's table shows; a longer one ends in ``...``."""


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    features = subparsers.add_parser(NAME, parents=parents, help="The local Feature Store.")
    actions = features.add_subparsers(dest="features_command", required=True, metavar="ACTION")
    query = actions.add_parser(
        "query",
        parents=parents,
        help="SQL over `reviews` (latest records) and `reviews_history` (all rows).",
    )
    query.add_argument("sql", help="One SELECT; the store is read-only here, as on the page's SQL box.")
    query.add_argument(
        "--max-rows",
        type=_row_limit,
        default=DEFAULT_ROWS,
        help=f"Rows to print (default {DEFAULT_ROWS}, at most {MAX_ROWS}).",
    )
    get = actions.add_parser("get", parents=parents, help="The latest record of a review (GetRecord).")
    get.add_argument("review_id")
    delete = actions.add_parser("delete", parents=parents, help="Delete a record (DeleteRecord).")
    delete.add_argument("review_id")


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    store = FeatureStore(workspace.offline_store_root)
    match args.features_command:
        case "query":
            columns, rows, more = store.query_read_only(args.sql, args.max_rows)
            if not columns:
                print("The statement returned nothing to show.")
                return 0
            print_table(columns, [[_cell(value) for value in row] for row in rows])
            if more:
                print(f"(more than {len(rows)} rows; the first {len(rows)} shown, --max-rows for more)")
            elif not rows:
                print("(0 rows)")
        case "get":
            record = store.get_record(args.review_id)
            if record is None:
                print(f"No record with review_id {args.review_id!r}", file=sys.stderr)
                return 1
            print(json.dumps(record, indent=2, default=str))
        case "delete":
            store.delete_record(args.review_id)
            print(f"Deleted {args.review_id}: gone from `reviews`, marked is_deleted in `reviews_history`.")
    return 0


def _row_limit(text: str) -> int:
    try:
        return parse_row_limit(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 3] + "..."
