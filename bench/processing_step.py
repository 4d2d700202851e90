"""The processing step end to end vs the course's whole script, as processes from start to exit.

Same machine, same run, same synthetic reviews (``data/synthetic_reviews.py``, one CSV file as the real data
set is), same bundled MiniLM tokenizer, truncation at 128, no balancing and no Feature Store ingestion on
either side, so both tokenize and write every valid review:

- **course** (the baseline): ``bench/course_preprocess.py``, the course's script: ``read_csv``, per-row
  ``to_sentiment`` and ``encode_plus`` (padded, as tensors), two ``train_test_split``, TSV files;
- **this step**: ``model_build/steps/preprocess.py`` as SageMaker runs it: scan (ids, decisions, duplicates,
  split), then read again, tokenize in batches on every core while the previous chunk is written, write
  Parquet splits, Feature Store records and rejects.

Each is timed from process start to exit (interpreter, imports and tokenizer loading included) with its peak
resident set size. The ceiling is what a step doing nothing but tokenizing, on every core at the one-core rate
of the same Rust calls, would take: about 5x the course here.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench._process import run_measured

REPO_ROOT = Path(__file__).resolve().parents[1]
STEP = REPO_ROOT / "model_build" / "steps" / "preprocess.py"
COURSE = Path(__file__).with_name("course_preprocess.py")

TITLE = "Processing step end to end vs the course's script"

MAX_SEQ_LENGTH = 128
TARGET_RATIO = 4.0
MEMORY_LIMIT_MB = 1024


@dataclass(frozen=True)
class Comparison:
    rows: int
    course_seconds: float
    course_peak_mb: float
    course_kept: int
    step_seconds: float
    step_peak_mb: float
    step_kept: int
    one_core_tokenize_seconds: float

    @property
    def ratio(self) -> float:
        return self.course_seconds / self.step_seconds

    @property
    def ceiling(self) -> float:
        """The course's time over a step that only tokenizes, on every core at the one-core rate."""
        return self.course_seconds / (self.one_core_tokenize_seconds / (os.cpu_count() or 1))


def compare(root: Path, rows: int, model_dir: Path, rounds: int) -> Comparison:
    """Course and step ``rounds`` times each, taking turns; each side's fastest round counts, so a burst of
    other work on the machine during one round does not decide the ratio."""
    from data.synthetic_reviews import write_synthetic_reviews

    input_dir = root / f"in-{rows}"
    write_synthetic_reviews(input_dir, rows=rows, files=1, seed=11)
    output = root / f"step-{rows}"
    courses, steps = [], []
    for round_ in range(1, rounds + 1):
        print(f"  course script on {rows:,} rows (round {round_} of {rounds})", flush=True)
        courses.append(
            run_measured(
                [sys.executable, str(COURSE), str(input_dir), str(root / f"course-{rows}"), str(model_dir)],
                root / f"course-{rows}.log",
                env={"TOKENIZERS_PARALLELISM": "true"},
            )
        )
        print(f"  preprocess.py on {rows:,} rows (round {round_} of {rounds})", flush=True)
        shutil.rmtree(output, ignore_errors=True)
        steps.append(
            run_measured(
                [
                    *(
                        sys.executable,
                        str(STEP),
                        "--input-data",
                        str(input_dir),
                        "--output-data",
                        str(output),
                    ),
                    *("--pretrained-model", str(model_dir), "--balance-dataset", "false"),
                    *("--max-seq-length", str(MAX_SEQ_LENGTH), "--min-test-reviews-per-class", "0"),
                ],
                root / f"step-{rows}.log",
            )
        )
    course = min(courses, key=lambda run: run.seconds)
    step = min(steps, key=lambda run: run.seconds)
    (summary_file,) = (output / "rejects").glob("summary-*.json")
    summary = json.loads(summary_file.read_text())
    if summary["read"] != rows:
        raise RuntimeError(f"preprocess.py read {summary['read']} rows, expected {rows}")
    print(f"  one-core tokenization of {rows:,} rows", flush=True)
    one_core = run_measured(
        [sys.executable, "-m", "bench.processing_step", "--one-core", str(input_dir), str(model_dir)],
        root / f"one-core-{rows}.log",
        env={"TOKENIZERS_PARALLELISM": "false"},
    )
    return Comparison(
        rows,
        course.seconds,
        course.peak_mb,
        int(course.log.strip().splitlines()[-1]),
        step.seconds,
        step.peak_mb,
        summary["kept"],
        float(one_core.log.strip().splitlines()[-1]),
    )


def time_one_core(input_dir: Path, model_dir: Path) -> float:
    """Seconds the step's tokenize calls take on the valid texts of ``input_dir``, in chunks, on one core."""
    import time

    import pandas as pd

    sys.path.insert(0, str(STEP.parent))
    import preprocess
    import tokenization

    backend = tokenization.load_tokenizer(str(model_dir), MAX_SEQ_LENGTH)
    chunk_size = preprocess.parse_args([]).chunk_size
    seconds = 0.0
    for path in sorted(input_dir.glob("*.csv")):
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_size)
        for frame in reader:
            texts = [text for text in frame["Review Text"] if text.strip()]
            started = time.perf_counter()
            tokenization.tokenize(backend, texts)
            seconds += time.perf_counter() - started
    return seconds


def run(quick: bool) -> str:
    from pipelines.models import bundled_model_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir = bundled_model_dir()
    # (rows, rounds): the course's script takes about 11 minutes on 1,000,000 rows here, so that size runs once.
    sizes = ((10_000, 2), (50_000, 1)) if quick else ((100_000, 3), (1_000_000, 1))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-processing-") as workspace:
        results = []
        for rows, rounds in sizes:
            print(f"{rows:,} rows", flush=True)
            results.append(compare(Path(workspace), rows, model_dir, rounds))
    return report(results, (load_before, os.getloadavg()[0]), quick)


def report(results: list[Comparison], load: tuple[float, float], quick: bool) -> str:
    lines = [
        "One CSV file of synthetic reviews per size, bundled MiniLM tokenizer, `max_length=128`, no balancing, "
        "no ingestion; each side is one process timed from start to exit (imports included), the two taking "
        "turns; at 100,000 rows each side runs 3 times and its fastest counts. One-minute load average "
        f"before/after: {load[0]:.2f}/{load[1]:.2f}.",
        "",
        "| Rows | Course s | Course peak | Step s | Step peak | Step rows/s | vs course | Ceiling | Of ceiling |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.rows:,} | {result.course_seconds:.1f} | {result.course_peak_mb:,.0f} MB | "
            f"{result.step_seconds:.1f} | {result.step_peak_mb:,.0f} MB | "
            f"{result.rows / result.step_seconds:,.0f} | **{result.ratio:.2f}x** | {result.ceiling:.2f}x | "
            f"{result.ratio / result.ceiling:.0%} |"
        )
    met = all(result.ratio >= TARGET_RATIO for result in results)
    largest, smallest = results[-1], results[0]
    memory_ok = largest.step_peak_mb < MEMORY_LIMIT_MB
    lines += [
        "",
        f"Target: the whole step at least {TARGET_RATIO:.0f}x the course's whole script at every size: "
        f"{'met' if met else '**not met**'} ({', '.join(f'{r.ratio:.2f}x' for r in results)}). The ceiling is "
        "the course's time over that of a step that would only tokenize, on every core at the one-core rate "
        "of the same Rust calls (measured in the same run).",
        f"Memory: the step's peak went from {smallest.step_peak_mb:,.0f} MB to {largest.step_peak_mb:,.0f} MB "
        f"for {largest.rows // smallest.rows}x the rows, under {MEMORY_LIMIT_MB:,} MB: "
        f"{'met' if memory_ok else '**not met**'} (the course's script holds everything: "
        f"{largest.course_peak_mb:,.0f} MB). Kept rows at {largest.rows:,}: course {largest.course_kept:,}, "
        f"step {largest.step_kept:,}"
        + (
            " (the step also rejects duplicate rows, which the course keeps)."
            if largest.step_kept < largest.course_kept
            else "."
        ),
    ]
    if quick:
        lines += ["", "_Quick run: sizes reduced; run `make bench` for the numbers the targets refer to._"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    if sys.argv[1:2] == ["--one-core"]:
        print(time_one_core(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        print(run(quick="--quick" in sys.argv))
