"""Monitoring job: one window of an endpoint's captured traffic against the model's evaluation baseline.

Runs under the SageMaker Processing contract, on a schedule on AWS and from ``python -m pipelines monitor``
locally, with the same arguments:

- ``--baseline``: the folder the evaluation step wrote (``monitoring-baseline/`` beside ``evaluation.json``:
  ``baseline.json``, the model's ``tokenizer.json``, the train split's token ids);
- ``--captures``: the endpoint's capture folder in SageMaker's layout,
  ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`` (this folder may be ``<prefix>/<endpoint>`` or one
  variant's), a local path or an ``s3://`` URI, read line by line (the job streams: memory stays flat);
- ``--since``/``--until``: the window (ISO-8601 times, or ``2h``/``30m``/``1d`` ago; default: the last
  ``--window-hours`` up to now); lines are kept by their ``inferenceTime``;
- ``--thresholds``: the stage's ``monitoring.thresholds`` as JSON (``monitoring_thresholds.DriftThresholds``).

It writes to ``--output-data``: ``report.json`` (verdict, traffic counts, both profiles, statistics, checks),
``constraint_violations.json`` (SageMaker Model Monitor's shape: ``{"violations": [{"feature_name",
"constraint_check_type", "description"}]}``) and ``drift.png`` (baseline and window side by side). With
``--publish-metrics NAMESPACE`` it also puts the statistics into CloudWatch (what the alarms watch).

A capture line that cannot be read is counted under its reason, with a few examples kept (file and line),
and never stops the job; a window without traffic is the verdict ``no_traffic``, which is neither a pass nor
drift. Verdicts: ``drift``, ``data_quality`` (clients send what the model cannot read), ``insufficient_traffic``
(fewer reviews than ``min_reviews``: statistics shown, not judged), ``no_traffic``, ``no_drift``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from capture_window import (
    CaptureSource,
    FolderCaptures,
    Malformed,
    Window,
    WindowError,
    capture_source,
    parse_line,
    parse_time,
)
from drift import (
    SENTIMENT_NAMES,
    Baseline,
    BaselineError,
    TextProfile,
    TokenCounter,
    length_bin_labels,
    read_baseline,
)
from drift_checks import Traffic, compare, format_value, verdict, violations
from monitoring_thresholds import DriftThresholds

logger = logging.getLogger("monitor")

REPORT_SCHEMA = "review-sentiment-monitoring-report/1"
REPORT_FILE = "report.json"
VIOLATIONS_FILE = "constraint_violations.json"
PICTURE_FILE = "drift.png"
TOKENIZE_BATCH = 2048
MAX_EXAMPLES_PER_REASON = 5

VERDICTS = ("drift", "data_quality", "insufficient_traffic", "no_traffic", "no_drift")


class MonitorInputError(ValueError):
    """Bad arguments or baseline: the job cannot judge anything, and says what is wrong."""


# ------------------------------------------------------------------------------------------------ profiling
def profile_window(
    source: CaptureSource, window: Window, counter: TokenCounter, progress: bool = True
) -> tuple[Traffic, TextProfile]:
    """Read the window's captures once, line by line; count the traffic and profile its reviews."""
    from tqdm.auto import tqdm

    traffic, profile = Traffic(), TextProfile()
    pending: list[str] = []
    bar = tqdm(desc="capture lines", unit=" lines", disable=not progress, mininterval=2)
    for name, lines in source.files(window):
        traffic.capture_files += 1
        for number, line in enumerate(lines, start=1):
            bar.update()
            if not line.strip():
                continue
            traffic.lines += 1
            try:
                invocation = parse_line(line)
            except Malformed as problem:
                traffic.malformed[problem.reason] += 1
                examples = traffic.examples.setdefault(problem.reason, [])
                if len(examples) < MAX_EXAMPLES_PER_REASON:
                    examples.append(f"{name}:{number}" + (f" ({problem.detail})" if problem.detail else ""))
                continue
            if invocation.time is not None and invocation.time not in window:
                traffic.outside_window += 1
                continue
            traffic.requests += 1
            traffic.non_utf8_requests += invocation.non_utf8
            traffic.refused_answers += invocation.refused
            if not invocation.reviews:
                traffic.empty_requests += not invocation.non_utf8
                continue
            traffic.reviews += len(invocation.reviews)
            if invocation.version is not None:
                traffic.reviews_by_version[invocation.version] += len(invocation.reviews)
            pending.extend(invocation.reviews)
            for sentiment, probability in invocation.predictions or []:
                profile.add_prediction(sentiment, probability)
            if len(pending) >= TOKENIZE_BATCH:
                counter.count(pending, profile)
                pending = []
    if pending:
        counter.count(pending, profile)
    bar.close()
    return traffic, profile


# ------------------------------------------------------------------------------------------------ outputs
METRIC_NAMES = {
    "max_length_psi": "ReviewLengthPSI",
    "max_length_js": "ReviewLengthJS",
    "max_prediction_psi": "PredictedClassPSI",
    "max_prediction_js": "PredictedClassJS",
    "max_truncated_share_increase": "TruncatedShareIncrease",
    "max_unseen_token_share_increase": "UnseenTokenShareIncrease",
    "max_confidence_drop": "ConfidenceDrop",
    "max_empty_request_share": "EmptyRequestShare",
    "max_non_utf8_request_share": "NonUtf8RequestShare",
    "max_malformed_line_share": "MalformedLineShare",
}
"""CloudWatch metric per check (``infra/constructs/model_monitoring.py`` alarms on ``Drift``)."""


def metrics(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as CloudWatch datums (name, value, unit); a statistic that was not measured is left out."""
    traffic = report["traffic"]
    result = report["verdict"]
    datums = [
        {"MetricName": "Drift", "Value": float(result == "drift"), "Unit": "None"},
        {"MetricName": "DataQualityIssue", "Value": float(result == "data_quality"), "Unit": "None"},
        {"MetricName": "NoTraffic", "Value": float(result == "no_traffic"), "Unit": "None"},
        {"MetricName": "Requests", "Value": float(traffic["requests"]), "Unit": "Count"},
        {"MetricName": "Reviews", "Value": float(traffic["reviews"]), "Unit": "Count"},
        {"MetricName": "MalformedLines", "Value": float(traffic["malformed_lines"]), "Unit": "Count"},
    ]
    for check in report["checks"]:
        if check["value"] is not None:
            datums.append(
                {"MetricName": METRIC_NAMES[check["threshold"]], "Value": check["value"], "Unit": "None"}
            )
    return datums


def publish_metrics(namespace: str, endpoint: str, datums: list[dict[str, Any]], at: datetime) -> None:
    import boto3

    dimensions = [{"Name": "EndpointName", "Value": endpoint}]
    client = boto3.client("cloudwatch")
    for start in range(0, len(datums), 20):  # 20 datums per call keeps well within PutMetricData's limits
        client.put_metric_data(
            Namespace=namespace,
            MetricData=[{**d, "Dimensions": dimensions, "Timestamp": at} for d in datums[start : start + 20]],
        )


SUMMARIES = {
    "drift": "DRIFT: the traffic moved away from what the model was evaluated on",
    "data_quality": "DATA QUALITY: requests the model cannot read, above the limits",
    "insufficient_traffic": "too little traffic to judge (statistics shown, not judged)",
    "no_traffic": "NO TRAFFIC in the window: nothing was judged (not a pass)",
    "no_drift": "no drift: the window is within every limit",
}


def build_report(
    endpoint: str,
    window: Window,
    baseline: Baseline,
    traffic: Traffic,
    profile: TextProfile,
    limits: DriftThresholds,
    baseline_location: str,
    captures_location: str,
) -> dict[str, Any]:
    checks = compare(baseline, traffic, profile, limits)
    result = verdict(traffic, profile, checks, limits)
    judged = profile.reviews >= limits.min_reviews
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "endpoint": endpoint,
        "window": {"since": window.since.isoformat(), "until": window.until.isoformat()},
        "verdict": result,
        "summary": SUMMARIES[result],
        "created": datetime.now(UTC).isoformat(),
        "inputs": {"baseline": baseline_location, "captures": captures_location},
        "traffic": traffic.as_json(),
        "thresholds": limits.as_json(),
        "checks": [c.as_json() for c in checks],
        "violations": violations(checks, judged),
        "baseline": {**baseline.profile.summary(), "label_counts": baseline.label_counts},
        "window_profile": profile.summary(),
        "files": {"report": REPORT_FILE, "violations": VIOLATIONS_FILE, "picture": PICTURE_FILE},
    }
    report["metrics"] = metrics(report)
    return report


def plot(report: dict[str, Any], baseline: Baseline, path: Path) -> None:
    """Baseline and window side by side: lengths, predicted classes, shares; the checks and the verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    base, window = report["baseline"], report["window_profile"]
    colors = {"baseline": "#9ecae1", "window": "#08519c"}
    figure, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    (lengths_ax, classes_ax), (shares_ax, checks_ax) = axes
    figure.suptitle(
        f"{report['endpoint']}  {report['window']['since'][:16]} to {report['window']['until'][:16]} UTC: "
        f"{report['summary']}",
        color="#a50f15" if report["verdict"] in ("drift", "data_quality", "no_traffic") else "#238b45",
        fontsize=11,
    )
    labels = length_bin_labels()
    x = np.arange(len(labels))
    for offset, (name, profile) in enumerate((("baseline", base), ("window", window))):
        lengths_ax.bar(
            x + (offset - 0.5) * 0.4, profile["length_shares"], 0.4, label=name, color=colors[name]
        )
    lengths_ax.axvline(
        next(
            (
                i
                for i, label in enumerate(labels)
                if int(label.split("-")[0].rstrip("+")) >= baseline.max_seq_length
            ),
            len(labels),
        )
        - 0.5,
        color="#a50f15",
        linestyle="--",
        linewidth=1,
        label=f"max length {baseline.max_seq_length}",
    )
    lengths_ax.set_xticks(x, labels, rotation=45, fontsize=8)
    lengths_ax.set(title="Review length (tokens)", ylabel="share of reviews")
    lengths_ax.legend(fontsize=8)

    x = np.arange(len(SENTIMENT_NAMES))
    label_shares = [
        baseline.label_counts[n] / max(1, sum(baseline.label_counts.values())) for n in SENTIMENT_NAMES
    ]
    classes_ax.bar(x - 0.3, label_shares, 0.3, label="baseline true labels", color="#c6dbef")
    classes_ax.bar(
        x,
        [base["predicted_shares"][n] for n in SENTIMENT_NAMES],
        0.3,
        label="baseline predicted",
        color=colors["baseline"],
    )
    classes_ax.bar(
        x + 0.3,
        [window["predicted_shares"][n] for n in SENTIMENT_NAMES],
        0.3,
        label="window predicted",
        color=colors["window"],
    )
    classes_ax.set_xticks(x, SENTIMENT_NAMES)
    classes_ax.set(title="Sentiment", ylabel="share of reviews", ylim=(0, 1.05))
    classes_ax.legend(fontsize=8)

    rows = [
        ("truncated reviews", "truncated_share"),
        ("unseen tokens", "unseen_token_share"),
        ("mean top probability", "mean_top_probability"),
    ]
    y = np.arange(len(rows))
    for offset, (name, profile) in enumerate((("baseline", base), ("window", window))):
        measured = [profile[key] for _, key in rows]  # None: nothing to measure it on, drawn as n/a, not 0
        values = [value or 0.0 for value in measured]
        bars = shares_ax.barh(y + (offset - 0.5) * 0.4, values, 0.4, label=name, color=colors[name])
        labels = ["n/a" if value is None else f"{value:.3f}" for value in measured]
        shares_ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    traffic = report["traffic"]
    shares_ax.set_yticks(y, [name for name, _ in rows])
    shares_ax.set(
        xlim=(0, 1.15),
        title=f"{traffic['requests']} requests, {traffic['reviews']} reviews, "
        f"{traffic['malformed_lines']} unreadable lines",
    )
    shares_ax.invert_yaxis()
    shares_ax.legend(fontsize=8, loc="lower right")

    checks_ax.axis("off")
    lines = []
    for check in report["checks"]:
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}[check["passed"]]
        lines.append(
            f"{mark} {check['threshold']:<33} {format_value(check['value']):>8} <= {format_value(check['limit'])}"
        )
    checks_ax.text(0, 1, "\n".join(lines), family="monospace", fontsize=8.5, va="top")
    checks_ax.set_title("Checks (value <= limit)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=Path("/opt/ml/processing/input/baseline"))
    parser.add_argument(
        "--captures", default="/opt/ml/processing/input/captures", help="A folder or s3:// URI."
    )
    parser.add_argument("--endpoint", default="", help="The endpoint's name, for the report and the metrics.")
    parser.add_argument("--since", help="Start of the window (ISO-8601, or an age: 30m, 2h, 1d).")
    parser.add_argument("--until", help="End of the window (default: now).")
    parser.add_argument("--window-hours", type=int, default=1, help="The window without --since (default 1).")
    parser.add_argument("--thresholds", default="{}", help="DriftThresholds as JSON (default: the defaults).")
    parser.add_argument("--output-data", type=Path, default=Path("/opt/ml/processing/output/monitoring"))
    parser.add_argument("--publish-metrics", metavar="NAMESPACE", help="Put the statistics into CloudWatch.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    return parser.parse_args(argv)


def window_of(args: argparse.Namespace, now: datetime) -> Window:
    if args.window_hours < 1:
        raise MonitorInputError(f"--window-hours must be at least 1, not {args.window_hours}")
    until = parse_time(args.until, now) if args.until else now
    since = parse_time(args.since, now) if args.since else until - timedelta(hours=args.window_hours)
    if since >= until:
        raise MonitorInputError(
            f"the window is empty: --since {since.isoformat()} is not before {until.isoformat()}"
        )
    return Window(since, until)


def run(args: argparse.Namespace) -> dict[str, Any]:
    window = window_of(args, datetime.now(UTC))
    try:
        limits = DriftThresholds.from_json(json.loads(args.thresholds))
    except (ValueError, TypeError) as error:
        raise MonitorInputError(f"--thresholds: {error}") from None
    baseline, counter = read_baseline(args.baseline)
    source = capture_source(args.captures)
    if isinstance(source, FolderCaptures) and not source.root.is_dir():
        logger.warning("the capture folder %s does not exist (yet): no traffic was captured", source.root)
    logger.info(
        "window %s to %s, captures %s", window.since.isoformat(), window.until.isoformat(), args.captures
    )
    traffic, profile = profile_window(source, window, counter, progress=not args.no_progress)
    endpoint = args.endpoint or Path(str(args.captures).rstrip("/")).name
    report = build_report(
        endpoint, window, baseline, traffic, profile, limits, str(args.baseline), args.captures
    )

    args.output_data.mkdir(parents=True, exist_ok=True)
    (args.output_data / REPORT_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
    (args.output_data / VIOLATIONS_FILE).write_text(
        json.dumps({"violations": report["violations"]}, indent=2), encoding="utf-8"
    )
    plot(report, baseline, args.output_data / PICTURE_FILE)
    for reason, count in traffic.malformed.items():
        logger.warning(
            "%d capture line(s) unreadable: %s (e.g. %s)", count, reason, traffic.examples[reason][0]
        )
    logger.info(
        "%s: %s; %d requests, %d reviews, %d violation(s); wrote %s",
        endpoint,
        report["verdict"],
        traffic.requests,
        traffic.reviews,
        len(report["violations"]),
        args.output_data / REPORT_FILE,
    )
    if args.publish_metrics:
        publish_metrics(args.publish_metrics, endpoint, report["metrics"], window.until)
        logger.info(
            "published %d metrics to CloudWatch namespace %s", len(report["metrics"]), args.publish_metrics
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        run(args)
    except (MonitorInputError, WindowError, BaselineError) as error:
        logger.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
