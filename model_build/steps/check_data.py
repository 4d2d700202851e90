"""The data-check step: is the raw input fit to train on? Schema, quality and pre-training bias, and a gate.

It runs before processing, on the same raw CSVs (``/opt/ml/processing/input/data``, a file or a folder of
``*.csv``/``*.csv.gz``), and writes under ``--output-data``:

- ``data_check.json``: the report (below), which the register step attaches to the model version as its
  pre-training bias report (``ModelMetrics.Bias.PreTrainingReport``) and whose ``summary`` lands in the
  version's metadata;
- ``data_check.png``: label shares per category of every facet, and missing values per column.

What it measures, over every row of every file (read in chunks, so memory stays flat):

- *schema*: the required columns (``Review Text``, ``Rating`` and every facet) are present, typed columns
  parse (``Rating`` an integer 1-5; ``Age``, ``Clothing ID``, ``Positive Feedback Count`` integers;
  ``Recommended IND`` 0 or 1), columns outside the known schema are listed (not an error);
- *missing values*: per column, the share of rows whose field is empty; only the columns the pipeline reads
  (``Review Text``, ``Rating`` and the facets) are judged against ``--max-missing-share``, the others (a
  ``Title`` real exports often leave empty) are reported;
- *malformed rows*: rows with more or fewer fields than their file's header are counted, named by file and
  physical line (the first few), and left out of every other figure; processing rejects them;
- *empty text*: the share of rows whose ``Review Text`` is empty or only whitespace;
- *duplicates*: the share of rows equal, field by field, to an earlier row of the input;
- *labels*: counts and shares per rating and per sentiment (rating 1-2 negative, 3 neutral, 4-5 positive);
- *pre-training bias*, per facet column (``--facets``) and per value of it, the two metrics SageMaker Clarify
  reports for a label before training, with Clarify's definitions: the rows of the value are facet *d*, all
  other rows with a label are facet *a* (Clarify's one-versus-rest for a categorical facet); a row's label is
  *positive* when its rating is one of ``--positive-ratings`` (Clarify's ``label_values_or_threshold``;
  the course uses ratings 4 and 5):

  - class imbalance ``CI = (n_a - n_d) / (n_a + n_d)``, in [-1, 1]: n are row counts; positive when the
    value is under-represented against the rest, 1 when it has no rows at all;
  - difference in proportions of labels ``DPL = q_a - q_d``, in [-1, 1], where ``q = n(1) / n`` is the
    share of a facet's rows with a positive label: positive when the value's rows are less often positive
    than the rest's (Clarify's "facet a has a higher proportion of positive outcomes"). A facet with no
    rows on either side has no DPL (null).

  Rows without a valid rating have no label and are left out of the bias metrics (counted as
  ``rows_without_label``); an empty facet field is a value of its own, ``(missing)``.

The gate: a check fails when the schema is broken (a required column missing, or more than
``--max-unparseable-share`` of a typed column's non-empty values unparseable), a column's missing share is
above ``--max-missing-share`` (a column the pipeline reads), the empty-text share above ``--max-empty-text-share``, or the duplicate share
above ``--max-duplicate-share``; with ``--gate-on-bias``, also when some facet value's ``|CI|`` is above
``--max-abs-class-imbalance`` or ``|DPL|`` above ``--max-abs-dpl``. Then the report is still written, every
failed check is printed (one sentence each: the column, the measured share or count, the threshold and the
parameter that sets it; also each check's ``message`` in the report), the same text goes to ``--exit-message``
(SageMaker shows that file's first KB as the processing job's ``ExitMessage``) and the step exits 1, which
stops the pipeline before processing. Exit 2: bad arguments, or input that is not readable CSV at all (a header that is not UTF-8 text, a binary
file), said in the exit message too; then nothing else is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import features
import numpy as np
from arguments import positive_int, str_to_bool
from data_profile import (
    VALID_RATINGS,
    Tally,
    facet_bias,
    max_abs,
    tally,
    typed_columns,
)
from reviews_csv import (
    InputError,
    find_sources,
    read_header_names,
)

logger = logging.getLogger("check_data")

REPORT_FILE = "data_check.json"
FIGURE_FILE = "data_check.png"

PIPELINE_PARAMETERS: dict[str, str] = {
    "--max-missing-share": "MaxMissingShare",
    "--max-empty-text-share": "MaxEmptyTextShare",
    "--max-duplicate-share": "MaxDuplicateShare",
    "--max-unparseable-share": "MaxUnparseableShare",
    "--max-abs-class-imbalance": "MaxAbsClassImbalance",
    "--max-abs-dpl": "MaxAbsDpl",
}
"""The pipeline parameter behind each threshold, named in a failed check so that the user knows what to set
(a test holds it to the pipeline description's arguments)."""


def _share(value: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {value}")
    return share


def _names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a name is listed twice in {value!r}")
    return names


def _ratings(value: str) -> list[int]:
    try:
        ratings = sorted({int(item) for item in _names(value)})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ratings like '4,5', got {value!r}") from None
    if not ratings or not set(ratings) <= VALID_RATINGS:
        raise argparse.ArgumentTypeError(f"expected one or more ratings of 1-5, got {value!r}")
    return ratings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-data", type=Path, required=True, help="A raw CSV file or a folder of them.")
    parser.add_argument("--output-data", type=Path, required=True, help="Where the report is written.")
    parser.add_argument(
        "--exit-message", type=Path, default=None, help="Also write a failed gate's message here."
    )
    parser.add_argument(
        "--facets",
        type=_names,
        default=["Class Name", "Division Name", "Department Name"],
        help="Comma-separated facet columns for the bias metrics.",
    )
    parser.add_argument(
        "--positive-ratings", type=_ratings, default=[4, 5], help="Ratings that are positive."
    )
    parser.add_argument("--max-missing-share", type=_share, default=0.5)
    parser.add_argument("--max-empty-text-share", type=_share, default=0.1)
    parser.add_argument("--max-duplicate-share", type=_share, default=0.1)
    parser.add_argument("--max-unparseable-share", type=_share, default=0.05)
    parser.add_argument("--gate-on-bias", type=str_to_bool, default=False)
    parser.add_argument("--max-abs-class-imbalance", type=_share, default=0.99)
    parser.add_argument("--max-abs-dpl", type=_share, default=0.5)
    parser.add_argument("--chunk-size", type=positive_int, default=50_000)
    args = parser.parse_args(argv)
    if not args.facets:
        parser.error("--facets: name at least one facet column")
    return args


# ------------------------------------------------------------------------------------------- the report
def _fraction(count: int, total: int) -> dict[str, Any]:
    return {"count": count, "share": count / total if total else 0.0}


def build_report(counts: Tally, args: argparse.Namespace) -> dict[str, Any]:
    """The report's every section; ``gate`` holds each check with its value and threshold."""
    required = [features.TEXT_COLUMN, features.RATING_COLUMN, *args.facets]
    files_missing = {
        name: [column for column in required if column not in header]
        for name, header in counts.files.items()
        if any(column not in header for column in required)
    }
    missing_columns = sorted({column for columns in files_missing.values() for column in columns})
    unparseable = {
        name: _fraction(counts.unparseable[name], counts.present[name])
        for name, _ in typed_columns(counts.columns)
    }
    missing = {name: _fraction(counts.missing[name], counts.rows) for name in counts.columns}
    read = counts.rows + counts.malformed
    labelled = sum(counts.ratings.values())
    sentiments: Counter[int] = Counter()
    for rating, count in counts.ratings.items():
        sentiments[features.SENTIMENT_BY_RATING[rating]] += count
    bias = {
        facet: facet_bias(dict(counts.facet_counts[facet]), dict(counts.facet_positives.get(facet, {})))
        for facet in args.facets
        if facet in counts.facet_counts
    }
    for facet, entry in bias.items():
        for (value, sentiment), count in counts.facet_sentiments[facet].items():
            entry["values"][value].setdefault("sentiments", {})[sentiment] = count
    report: dict[str, Any] = {
        "rows": counts.rows,
        "malformed_rows": {
            **_fraction(counts.malformed, read),
            "what": "rows with another number of fields than the header: not in the other figures; "
            "processing rejects them (rejects/, reason too_many_fields or too_few_fields, with source_line)",
            "first": counts.malformed_lines,
        },
        "files": sorted(counts.files),
        "columns": counts.columns,
        "schema": {
            "required_columns": required,
            "missing_columns": missing_columns,
            "files_missing_columns": files_missing,
            "unknown_columns": [
                name
                for name in counts.columns
                if name not in (*features.RAW_COLUMNS, features.LABEL_SOURCE_COLUMN)
            ],
            "unparseable": unparseable,
        },
        "missing_values": missing,
        "missing_values_judged": [column for column in required if column in missing],
        "missing_values_not_judged": [column for column in missing if column not in required],
        "empty_text": _fraction(counts.empty_text, counts.rows),
        "duplicates": _fraction(counts.duplicates, counts.rows),
        "labels": {
            "rows_with_label": labelled,
            "rows_without_label": counts.rows_without_label,
            "human_labels": counts.human_labels,
            "by_rating": {str(r): _fraction(counts.ratings[r], labelled) for r in sorted(VALID_RATINGS)},
            "by_sentiment": {
                features.SENTIMENT_NAMES[s]: _fraction(sentiments[s], labelled)
                for s in sorted(features.SENTIMENT_NAMES)
            },
        },
        "bias": {
            "label": f"{features.RATING_COLUMN} in {args.positive_ratings}",
            "definitions": {
                "CI": "(n_a - n_d) / (n_a + n_d); facet d: the value's rows, facet a: every other labelled row",
                "DPL": "q_a - q_d, q = positive-labelled rows / rows of the facet",
            },
            "facets": bias,
        },
    }
    report["gate"] = gate(report, args, dict(counts.present))
    report["summary"] = summary(report)
    return report


KIND_WORDS = {"rating": "ratings 1-5", "flag": "0 or 1", "integer": "whole numbers"}
"""What a typed column's values must parse as, in the sentence of its check."""


def gate(report: dict[str, Any], args: argparse.Namespace, non_empty: dict[str, int]) -> dict[str, Any]:
    """Every check: what it looks at, its value, its threshold, whether it holds, and ``message``: the same
    in one plain sentence (the column, the measured share or count, the threshold and what sets it).

    ``non_empty``: the non-empty values per typed column, the base of its unparseable share.
    """
    checks: list[dict[str, Any]] = []

    def check(
        name: str, where: str, value: Any, operator: str, threshold: Any, argument: str, message: str
    ) -> None:
        holds = {"<=": value <= threshold, ">=": value >= threshold, "==": value == threshold}[operator]
        checks.append(
            {
                "check": name,
                "where": where,
                "value": value,
                "operator": operator,
                "threshold": threshold,
                "argument": argument,
                "passed": bool(holds),
                "message": message,
            }
        )

    def at_most(value: float, threshold: float, argument: str, percent: bool = True) -> tuple[str, str]:
        """The value as written in the sentence, and the sentence's end: the limit and what sets it."""
        shown, limit = _pair(value, threshold, percent)
        side = "within" if value <= threshold else "above"
        return shown, f", {side} the {limit} allowed ({_threshold_name(argument)})"

    rows = report["rows"]
    schema = report["schema"]
    for column in schema["missing_columns"]:
        files = [name for name, columns in schema["files_missing_columns"].items() if column in columns]
        where = f"{column} (missing in {', '.join(files)})"
        message = f"the required column {column} is missing from {_listed(files)}"
        check("schema: required column present", where, False, "==", True, "", message)
    kinds = dict(typed_columns(schema["unparseable"]))
    for column, entry in schema["unparseable"].items():
        argument = "--max-unparseable-share"
        shown, limit = at_most(entry["share"], args.max_unparseable_share, argument)
        of = f" ({entry['count']} of {non_empty.get(column, 0)} non-empty)"
        message = f"{shown} of {column} values{of} do not parse as {KIND_WORDS[kinds[column]]}{limit}"
        check(
            "schema: values parse as the column's type",
            column,
            entry["share"],
            "<=",
            args.max_unparseable_share,
            argument,
            message,
        )
    for column in report["missing_values_judged"]:  # the columns the pipeline reads; the others are reported
        entry = report["missing_values"][column]
        shown, limit = at_most(entry["share"], args.max_missing_share, "--max-missing-share")
        message = f"{column} is empty in {shown} of rows ({entry['count']} of {rows}){limit}"
        check(
            "missing-value share",
            column,
            entry["share"],
            "<=",
            args.max_missing_share,
            "--max-missing-share",
            message,
        )
    if features.TEXT_COLUMN in report["columns"]:
        entry = report["empty_text"]
        shown, limit = at_most(entry["share"], args.max_empty_text_share, "--max-empty-text-share")
        message = (
            f"{features.TEXT_COLUMN} is empty or only whitespace in {shown} of rows "
            f"({entry['count']} of {rows}){limit}"
        )
        check(
            "empty-text share",
            features.TEXT_COLUMN,
            entry["share"],
            "<=",
            args.max_empty_text_share,
            "--max-empty-text-share",
            message,
        )
    entry = report["duplicates"]
    shown, limit = at_most(entry["share"], args.max_duplicate_share, "--max-duplicate-share")
    message = f"{shown} of rows ({entry['count']} of {rows}) repeat an earlier row field for field{limit}"
    check(
        "duplicate share",
        "all rows",
        entry["share"],
        "<=",
        args.max_duplicate_share,
        "--max-duplicate-share",
        message,
    )
    labelled = report["labels"]["rows_with_label"]
    rating = features.RATING_COLUMN
    if labelled:
        message = f"{labelled} of {rows} rows have a valid {rating} (1-5)"
    elif rows == 0:
        message = f"no row has a valid {rating} (1-5): the input has no data rows, only a header"
    elif rating not in report["columns"]:
        message = f"no row has a valid {rating} (1-5): there is no {rating} column"
    else:
        message = f"no row has a valid {rating} (1-5): all {rows} rows have an empty or unparseable {rating}"
    check("rows with a valid rating", rating, labelled, ">=", 1, "", message)
    if args.gate_on_bias:
        for facet, entry in report["bias"]["facets"].items():
            for value, metrics in entry["values"].items():
                for metric, threshold, argument, meaning in (
                    ("CI", args.max_abs_class_imbalance, "--max-abs-class-imbalance", "class imbalance"),
                    ("DPL", args.max_abs_dpl, "--max-abs-dpl", "difference in positive-label shares"),
                ):
                    if metrics[metric] is not None:
                        size = abs(metrics[metric])
                        shown, limit = at_most(size, threshold, argument, percent=False)
                        message = (
                            f"{facet} = {value} ({_rows(metrics['count'], 'labelled row')}): the {meaning} against "
                            f"the other rows, |{metric}|, is {shown}{limit}"
                        )
                        check(f"|{metric}|", f"{facet} = {value}", size, "<=", threshold, argument, message)
    return {"passed": all(item["passed"] for item in checks), "checks": checks}


def _pair(value: float, threshold: float, percent: bool) -> tuple[str, str]:
    """Value and threshold with as few digits as tell them apart (5.0004% is not written as 5%)."""
    scale = 100 if percent else 1
    suffix = "%" if percent else ""
    for digits in range(3, 10):
        shown, limit = f"{value * scale:.{digits}g}", f"{threshold * scale:.{digits}g}"
        if (shown != limit) == (value != threshold):
            break
    return shown + suffix, limit + suffix


def _rows(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few figures the model version's metadata carries (the full report is attached beside them)."""
    shares = {name: report["missing_values"][name]["share"] for name in report["missing_values_judged"]}
    worst = max(shares, key=lambda name: shares[name]) if shares else None
    facets = report["bias"]["facets"]
    return {
        "rows": report["rows"],
        "gate_passed": report["gate"]["passed"],
        "max_missing_share": shares[worst] if worst else 0.0,
        "max_missing_column": worst,
        "empty_text_share": report["empty_text"]["share"],
        "duplicate_share": report["duplicates"]["share"],
        "positive_label_share": report["labels"]["by_sentiment"]["positive"]["share"],
        "human_labels": report["labels"]["human_labels"],
        "max_abs_CI": max_abs(entry["max_abs_CI"] for entry in facets.values()),
        "max_abs_DPL": max_abs(entry["max_abs_DPL"] for entry in facets.values()),
        "max_abs_CI_by_facet": {facet: entry["max_abs_CI"] for facet, entry in facets.items()},
        "max_abs_DPL_by_facet": {facet: entry["max_abs_DPL"] for facet, entry in facets.items()},
    }


def _threshold_name(argument: str) -> str:
    parameter = PIPELINE_PARAMETERS.get(argument)
    return f"{parameter}, {argument}" if parameter else argument


def failure_message(report: dict[str, Any]) -> str:
    failed = [item for item in report["gate"]["checks"] if not item["passed"]]
    count = f"{len(failed)} of its {len(report['gate']['checks'])} checks"
    lines = [f"The data check failed {count}; the pipeline stops before processing:"]
    lines += [f"- {item['message']}" for item in failed]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- the picture
def plot(report: dict[str, Any], path: Path) -> None:
    """Sentiment shares per value of each facet (stacked bars, row counts on the side), and missing values
    per column: where a reader looks first for a skewed category or a column that is mostly empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    facets = report["bias"]["facets"]
    heights = [max(2.0, 0.28 * len(entry["values"]) + 1) for entry in facets.values()]
    heights.append(max(2.0, 0.3 * len(report["columns"]) + 1))
    figure, axes = plt.subplots(
        len(heights), 1, figsize=(9, sum(heights)), gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    colours = {"negative": "#d62728", "neutral": "#bbbbbb", "positive": "#2ca02c"}
    for ax, (facet, entry) in zip(axes[:-1, 0], facets.items(), strict=True):
        names = list(entry["values"])
        left = np.zeros(len(names))
        shares = sentiment_shares_by_value(report, facet)
        for sentiment, colour in colours.items():
            widths = np.array([shares[name][sentiment] for name in names])
            ax.barh(names, widths, left=left, color=colour, label=sentiment)
            left += widths
        for row, name in enumerate(names):
            metrics = entry["values"][name]
            ci, dpl = metrics["CI"], metrics["DPL"]
            ax.text(
                1.01,
                row,
                f"n={metrics['count']}  CI={_fmt(ci)}  DPL={_fmt(dpl)}",
                va="center",
                fontsize=7,
                transform=ax.get_yaxis_transform(),
            )
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), xlabel="share of the value's rows")
        # The legend on a row of its own between the title and the bars: beside the title, a long facet
        # name ran into it.
        ax.set_title(f"Sentiment shares per {facet}", loc="left", pad=16)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncols=3, frameon=False)
    ax = axes[-1, 0]
    columns = report["columns"]
    missing = [report["missing_values"][name]["share"] for name in columns]
    ax.barh(columns, missing, color="#1f77b4")
    for row, share in enumerate(missing):
        ax.text(share + 0.01, row, f"{share:.1%}", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.1), title=f"Missing values per column ({report['rows']} rows)", xlabel="share of rows")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def sentiment_shares_by_value(report: dict[str, Any], facet: str) -> dict[str, dict[str, float]]:
    """Shares of negative / neutral / positive among a facet value's rows."""
    shares = {}
    for name, metrics in report["bias"]["facets"][facet]["values"].items():
        counts = metrics.get("sentiments", {})
        total = sum(counts.values()) or 1
        shares[name] = {
            sentiment: counts.get(sentiment, 0) / total for sentiment in ("negative", "neutral", "positive")
        }
    return shares


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


# ------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        sources, ignored = find_sources(args.input_data)
        if ignored:
            logger.info("ignored %d file(s) that are not CSV: %s", len(ignored), ", ".join(ignored[:10]))
        for source in sources:  # every header first: a file that is not CSV text fails before the long read
            read_header_names(source)
        counts = tally(sources, args.facets, args.positive_ratings, args.chunk_size)
    except InputError as error:
        logger.error("%s", error)
        write_exit_message(args.exit_message, f"The data check cannot read the input: {error}")
        return 2
    report = build_report(counts, args)
    args.output_data.mkdir(parents=True, exist_ok=True)
    (args.output_data / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.output_data / FIGURE_FILE)
    print_report(report)
    print(f"  report {args.output_data / REPORT_FILE}, picture {args.output_data / FIGURE_FILE}", flush=True)
    if not report["gate"]["passed"]:
        message = failure_message(report)
        write_exit_message(args.exit_message, message)
        print(message, file=sys.stderr, flush=True)
        return 1
    return 0


def write_exit_message(path: Path | None, message: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message.encode("utf-8")[:1024].decode("utf-8", errors="ignore"))


def print_report(report: dict[str, Any]) -> None:
    summary_ = report["summary"]
    print(
        f"data check: {report['rows']} rows in {len(report['files'])} file(s); "
        f"empty text {summary_['empty_text_share']:.1%}, duplicates {summary_['duplicate_share']:.1%}, "
        f"most missing {summary_['max_missing_column']} {summary_['max_missing_share']:.1%}",
        flush=True,
    )
    malformed = report["malformed_rows"]
    if malformed["count"]:
        shown = "; ".join(malformed["first"][:5]) + ("; ..." if malformed["count"] > 5 else "")
        print(
            f"  {malformed['count']} rows with another number of fields than the header, left out here and "
            f"rejected by processing: {shown}"
        )
    unread = {
        column: report["missing_values"][column]["share"]
        for column in report["missing_values_not_judged"]
        if report["missing_values"][column]["count"]
    }
    if unread:
        listed = ", ".join(f"{column} {share:.1%}" for column, share in sorted(unread.items()))
        print(f"  empty in columns the pipeline does not read (reported, not judged): {listed}")
    for facet, entry in report["bias"]["facets"].items():
        print(f"  {facet}: max |CI| {_fmt(entry['max_abs_CI'])}, max |DPL| {_fmt(entry['max_abs_DPL'])}")
    print(f"  gate: {'passed' if report['gate']['passed'] else 'FAILED'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
