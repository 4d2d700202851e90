"""The drift monitor (``model_build/steps/monitor.py``) on a window of up to 1,000,000 captured requests.

Same run, same machine: capture files in SageMaker's layout and shape (one review per request, its JSON
answer), written once at the largest size; the job runs end to end as a subprocess on windows of growing size
(the smaller windows are the first files of the same hour folder, through ``--until``), with the bundled
MiniLM's tokenizer in the baseline (the same Rust ``tokenizers`` machinery as RoBERTa's).

- **reference** (the baseline of the throughput): the same lines read and parsed (``json.loads`` of the
  line and of the request and answer bodies) by a bare loop in one process, no tokenization, no profile: what
  any reader of the window must pay at least;
- **the job**: everything it does (parse, tokenize without truncation, count, compare, report, picture).

Peak memory is each job's own maximum resident set size (``os.wait4`` from a small parent); the target is a
flat line, well under 1 GB: the job streams the window line by line and tokenizes in batches of 2,048.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._process import run_measured

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS = REPO_ROOT / "model_build" / "steps"
TITLE = "Drift monitor: a window of captured requests, throughput and peak memory"
MEMORY_LIMIT_MB = 1024
HOUR = datetime(2026, 12, 1, 12, tzinfo=UTC)
LINES_PER_FILE = 50_000
SENTIMENTS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class JobRun:
    requests: int
    seconds: float
    peak_mb: float
    verdict: str

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def _texts(count: int) -> list[str]:
    import numpy as np

    from data.synthetic_reviews import compose_reviews

    frame = compose_reviews(np.random.default_rng(7), count, empty_text_share=0.0)
    return [str(text) for text in frame["Review Text"] if isinstance(text, str) and text.strip()]


def write_baseline(folder: Path, texts: list[str]) -> Path:
    sys.path.insert(0, str(STEPS))
    import drift
    from tokenizers import Tokenizer

    from pipelines.models import bundled_model_dir

    tokenizer = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
    known = set()
    for encoding in tokenizer.encode_batch(texts[:2000]):
        known.update(encoding.ids)
    counter = drift.TokenCounter(tokenizer, known, 128)
    profile = drift.TextProfile()
    counter.count(texts[:2000], profile)
    for index in range(2000):
        profile.add_prediction(SENTIMENTS[index % 3], 0.9)
    labels = dict(profile.predicted_counts)
    drift.write_baseline(folder, drift.Baseline(profile, labels, 128, "synthetic"), counter.tokenizer, known)
    return folder


def write_captures(root: Path, texts: list[str], requests: int) -> list[datetime]:
    """``requests`` capture lines over one hour's folder; returns the time after each file's last line."""
    folder = root / "AllTraffic" / HOUR.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True)
    step = timedelta(seconds=3000 / requests)  # the whole window within the first 50 minutes
    ends = []
    for start in range(0, requests, LINES_PER_FILE):
        with (folder / f"{start:08d}-{uuid.uuid4()}.jsonl").open("w", encoding="utf-8") as handle:
            for index in range(start, min(requests, start + LINES_PER_FILE)):
                moment = HOUR + step * index
                text = texts[index % len(texts)]
                answer: list[dict[str, object]] = [
                    {"sentiment": SENTIMENTS[index % 3], "probability": 0.9, "predicted_label": index % 3 - 1}
                ]
                record = {
                    "captureData": {
                        "endpointInput": {
                            "observedContentType": "application/json",
                            "mode": "INPUT",
                            "data": json.dumps({"features": [text]}),
                            "encoding": "JSON",
                        },
                        "endpointOutput": {
                            "observedContentType": "application/json",
                            "mode": "OUTPUT",
                            "data": json.dumps(answer),
                            "encoding": "JSON",
                        },
                    },
                    "eventMetadata": {
                        "eventId": str(index),
                        "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    },
                    "eventVersion": "0",
                }
                handle.write(json.dumps(record) + "\n")
        ends.append(HOUR + step * min(requests, start + LINES_PER_FILE))
    return ends


def reference_seconds(root: Path, requests: int) -> float:
    """Read and parse ``requests`` lines with a bare loop: the floor any reader pays."""
    started = time.perf_counter()
    seen = 0
    for path in sorted(root.rglob("*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                record = json.loads(line)
                capture = record["captureData"]
                json.loads(capture["endpointInput"]["data"])
                json.loads(capture["endpointOutput"]["data"])
                seen += 1
                if seen == requests:
                    return time.perf_counter() - started
    return time.perf_counter() - started


def run_job(baseline: Path, captures: Path, until: datetime, output: Path, requests: int) -> JobRun:
    command = [
        sys.executable, str(STEPS / "monitor.py"), "--baseline", str(baseline), "--captures", str(captures),
        "--since", HOUR.isoformat(), "--until", until.isoformat(), "--output-data", str(output), "--no-progress",
    ]  # fmt: skip
    measured = run_measured(command, output.parent / f"{output.name}.log")
    report = json.loads((output / "report.json").read_text())
    if report["traffic"]["requests"] != requests:
        raise RuntimeError(f"the job judged {report['traffic']['requests']} requests, expected {requests}")
    return JobRun(requests, measured.seconds, measured.peak_mb, report["verdict"])


def run(quick: bool) -> str:
    sizes = [2_000, 10_000, 50_000] if quick else [10_000, 100_000, 1_000_000]
    largest = max(sizes)
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as folder:
        root = Path(folder)
        texts = _texts(20_000)
        baseline = write_baseline(root / "baseline", texts)
        runs, written, size_mb = [], 0.0, 0.0
        for size in sizes:  # a capture folder per window size: the job reads exactly that many lines
            started = time.perf_counter()
            until = write_captures(root / f"captures-{size}", texts, size)[-1]
            written += time.perf_counter() - started
            size_mb = sum(p.stat().st_size for p in (root / f"captures-{size}").rglob("*.jsonl")) / 2**20
            runs.append(run_job(baseline, root / f"captures-{size}", until, root / f"out-{size}", size))
        reference = reference_seconds(root / f"captures-{largest}", largest)
    smallest = runs[0]
    rows = [
        f"| {r.requests:,} | {r.seconds:.1f} | {r.per_second:,.0f} | {r.peak_mb:.0f} | "
        f"{r.peak_mb / smallest.peak_mb:.2f}x | {r.verdict} |"
        for r in runs
    ]
    top = runs[-1]
    flat = top.peak_mb / smallest.peak_mb
    return "\n".join(
        [
            f"Up to {largest:,} captured requests ({size_mb:,.0f} MB of JSON lines for the largest window), one "
            f"review each, in files of {LINES_PER_FILE:,} lines (writing them all took {written:.0f} s).",
            "",
            "| requests in the window | job wall time (s) | requests/s | peak memory (MB) | vs the smallest window | verdict |",
            "|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"Reference (read and parse {largest:,} lines, nothing else, one process): {reference:.1f} s, "
            f"{largest / reference:,.0f} lines/s; the job runs at **{top.per_second / (largest / reference):.2f}x** "
            "the reference's rate (it also tokenizes every review and counts it).",
            "",
            f"Peak memory on {top.requests:,} requests is **{flat:.2f}x** that on {smallest.requests:,} "
            f"({top.peak_mb:.0f} MB; target: flat, under {MEMORY_LIMIT_MB} MB: "
            f"{'met' if flat < 1.3 and top.peak_mb < MEMORY_LIMIT_MB else 'NOT met'}).",
            f"Cores: {os.cpu_count()}.",
        ]
    )
