"""The processing step end to end vs the course's whole script, as processes from start to exit.

Same machine, same run, same reviews (synthetic ones from ``data/synthetic_reviews.py`` at two sizes, then
real users' whole reviews from a public set of ``bench/_review_sets.py``; one CSV file as the real data set is), same
bundled MiniLM tokenizer, truncation at 128, no balancing and no Feature Store ingestion on
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


REAL_TEXT_ROWS = 100_000
"""The real-text row's size: the whole reviews of a public set (``bench/_review_sets.py``) cycled to this many."""
REAL_TEXT_SET = "drugs.com"
"""Whole user reviews (452 characters on average, the synthetic ones 270): the other set holds single sentences."""


@dataclass(frozen=True)
class Comparison:
    text: str
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


def synthetic_input(root: Path, rows: int) -> Path:
    """A folder with one CSV file of ``rows`` synthetic reviews."""
    from data.synthetic_reviews import write_synthetic_reviews

    input_dir = root / f"in-synthetic-{rows}"
    write_synthetic_reviews(input_dir, rows=rows, files=1, seed=11)
    return input_dir


def real_text_input(root: Path, rows: int) -> Path:
    """A folder with one CSV file of ``rows`` real reviews: the reviews of :data:`REAL_TEXT_SET`, cycled.

    Real users' text is longer and more varied than the generator's (a drug review often runs past the 128-token
    cut), which is where tokenizing whole texts costs most. Each row keeps its own index value, as the Kaggle
    file's first column does, so a repeated text is not a duplicate row: both sides keep and tokenize every one.
    """
    from bench._review_sets import SETS

    (review_set,) = (review_set for review_set in SETS if review_set.name == REAL_TEXT_SET)
    texts = review_set.frame()
    frame = texts.iloc[[index % len(texts) for index in range(rows)]].reset_index(drop=True)
    input_dir = root / f"in-real-{rows}"
    input_dir.mkdir(parents=True)
    frame.to_csv(input_dir / "reviews-00000.csv", index=True)
    return input_dir


def compare(root: Path, text: str, input_dir: Path, rows: int, model_dir: Path, rounds: int) -> Comparison:
    """Course and step ``rounds`` times each, taking turns; each side's fastest round counts, so a burst of
    other work on the machine during one round does not decide the ratio."""
    output = root / f"step-{text}-{rows}"
    courses, steps = [], []
    for round_ in range(1, rounds + 1):
        print(f"  course script on {rows:,} rows (round {round_} of {rounds})", flush=True)
        courses.append(
            run_measured(
                [
                    sys.executable,
                    str(COURSE),
                    str(input_dir),
                    str(root / f"course-{text}-{rows}"),
                    str(model_dir),
                ],
                root / f"course-{text}-{rows}.log",
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
                root / f"step-{text}-{rows}.log",
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
        root / f"one-core-{text}-{rows}.log",
        env={"TOKENIZERS_PARALLELISM": "false"},
    )
    return Comparison(
        text,
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
    real_rows, real_rounds = (10_000, 1) if quick else (REAL_TEXT_ROWS, 3)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-processing-") as workspace:
        root = Path(workspace)
        results = []
        for rows, rounds in sizes:
            print(f"{rows:,} synthetic rows", flush=True)
            results.append(compare(root, "synthetic", synthetic_input(root, rows), rows, model_dir, rounds))
        print(f"{real_rows:,} rows of real review text", flush=True)
        results.append(
            compare(root, "real", real_text_input(root, real_rows), real_rows, model_dir, real_rounds)
        )
    return report(results, (load_before, os.getloadavg()[0]), quick)


def report(results: list[Comparison], load: tuple[float, float], quick: bool) -> str:
    synthetic = [result for result in results if result.text == "synthetic"]
    real = [result for result in results if result.text == "real"]
    lines = [
        "One CSV file per row: synthetic reviews per size, then real users' review text (the "
        f"{REAL_TEXT_SET} reviews of `bench/_review_sets.py`, 452 characters on average against the synthetic "
        f"270, cycled to {REAL_TEXT_ROWS:,} rows, each row its own index value as in the Kaggle file); bundled MiniLM "
        "tokenizer, `max_length=128`, no balancing, no ingestion; each side is one process timed from start to "
        "exit (imports included), the two taking turns; at 100,000 rows each side runs 3 times and its fastest "
        f"counts. One-minute load average before/after: {load[0]:.2f}/{load[1]:.2f}.",
        "",
        "| Text | Rows | Course s | Course peak | Step s | Step peak | Step rows/s | vs course | Ceiling | "
        "Of ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.text} | {result.rows:,} | {result.course_seconds:.1f} | {result.course_peak_mb:,.0f} MB | "
            f"{result.step_seconds:.1f} | {result.step_peak_mb:,.0f} MB | "
            f"{result.rows / result.step_seconds:,.0f} | **{result.ratio:.2f}x** | {result.ceiling:.2f}x | "
            f"{result.ratio / result.ceiling:.0%} |"
        )
    met = all(result.ratio >= TARGET_RATIO for result in results)
    largest, smallest = synthetic[-1], synthetic[0]
    memory_ok = largest.step_peak_mb < MEMORY_LIMIT_MB
    kept = "; ".join(
        f"{result.text} {result.rows:,}: course {result.course_kept:,}, step {result.step_kept:,}"
        for result in (largest, *real)
    )
    lines += [
        "",
        f"Target: the whole step at least {TARGET_RATIO:.0f}x the course's whole script at every size and on "
        f"real text: {'met' if met else '**not met**'} ({', '.join(f'{r.ratio:.2f}x' for r in results)}). The "
        "ceiling is the course's time over that of a step that would only tokenize, on every core at the "
        "one-core rate of the same Rust calls (measured in the same run); the step cuts each text to what the "
        "128-token truncation keeps before tokenizing (`token_cut`), which is why long real text does not "
        "slow it the way it slows the course.",
        f"Memory: the step's peak went from {smallest.step_peak_mb:,.0f} MB to {largest.step_peak_mb:,.0f} MB "
        f"for {largest.rows // smallest.rows}x the rows, under {MEMORY_LIMIT_MB:,} MB: "
        f"{'met' if memory_ok else '**not met**'} (the course's script holds everything: "
        f"{largest.course_peak_mb:,.0f} MB). Kept rows: {kept}"
        + (
            " (the step also rejects duplicate rows, which the course keeps)."
            if any(result.step_kept < result.course_kept for result in results)
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
