"""Batch scoring of a review file: batches through the handler vs a one-row-at-a-time loop, same run.

The bundled MiniLM, labelled and packed with the repository's handler as training packs a version
(``bench.endpoint_load``'s archive), scores synthetic reviews (``data.synthetic_reviews``) with
``model_deploy.batch_scoring.score_file``, the code behind ``python -m pipelines predict --input``:

1. **one row at a time** (the baseline): the same file, the same handler, one review per handler call
   (``batch_size=1``), as a loop over the rows calling an endpoint or ``predict_fn`` per review would;
2. **batches** (the template): ``batch_size=64`` (the handler's per-request cap), which the handler sorts by
   length and runs 8 at a time.

Both read and write the CSV the same streaming way, so the ratio is the batching's. The baseline runs on the
first rows of the file only (a loop over all of them would take most of an hour on 2 cores; rows/s of a
loop does not depend on how long it runs); the two answers are checked to agree on the rows both scored.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from pathlib import Path

TITLE = "Batch scoring a review file: batches through the handler vs one row at a time"


def _first_rows(source: Path, target: Path, rows: int) -> Path:
    with (
        source.open(newline="", encoding="utf-8") as inp,
        target.open("w", newline="", encoding="utf-8") as out,
    ):
        reader, writer = csv.reader(inp), csv.writer(out)
        writer.writerow(next(reader))
        for _, row in zip(range(rows), reader, strict=False):
            writer.writerow(row)
    return target


def _answers(path: Path, rows: int) -> list[tuple[str, str, float]]:
    """(status, sentiment, probability) of the first ``rows`` rows; an unscorable row's probability is 0."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return [
            (row["status"], row["sentiment"], float(row["probability"] or 0))
            for _, row in zip(range(rows), reader, strict=False)
        ]


def run(quick: bool) -> str:
    from bench.endpoint_load import _archive
    from data.synthetic_reviews import write_synthetic_reviews
    from model_deploy.batch_scoring import load_version, score_file

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows, loop_rows = (2_000, 300) if quick else (100_000, 3_000)
    with tempfile.TemporaryDirectory(prefix="bench-batch-scoring-") as workspace:
        root = Path(workspace)
        archive = _archive(root)
        (reviews,) = write_synthetic_reviews(root / "reviews", rows, files=1, seed=3)
        first = _first_rows(reviews, root / "first.csv", loop_rows)
        score = load_version(archive, root / "host")
        score(["warm-up review, loads the kernels"])
        results = {}
        for name, source, batch_size in (("one row at a time", first, 1), ("batches of 64", reviews, 64)):
            output = root / f"{batch_size}.csv"
            started = time.perf_counter()
            result = score_file(source, output, score, batch_size=batch_size, progress=not quick)
            seconds = time.perf_counter() - started
            results[name] = (result, seconds, output)
        loop, batch = results["one row at a time"], results["batches of 64"]
        agree = [
            a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-3
            for a, b in zip(_answers(loop[2], loop_rows), _answers(batch[2], loop_rows), strict=True)
        ]
    base_rate = loop[0].rows / loop[1]
    load = os.getloadavg()[0]
    lines = [
        f"{rows:,} synthetic reviews (`data.synthetic_reviews`, seed 3), the bundled MiniLM packed as a version "
        "with the repository's handler, max length 128, scored in this process by `score_file` "
        "(`python -m pipelines predict --input ... --version N`).",
        "",
        "| mode | rows | seconds | rows/s | vs one row at a time |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (result, seconds, _) in results.items():
        rate = result.rows / seconds
        lines.append(f"| {name} | {result.rows:,} | {seconds:.1f} | {rate:.1f} | {rate / base_rate:.2f}x |")
    unscorable = {name: result.unscorable_rows for name, (result, _, _) in results.items()}
    lines += [
        "",
        f"The loop ran on the first {loop_rows:,} rows; on those rows the two agree on "
        f"{sum(agree)}/{len(agree)} rows (same status and sentiment, probability within 0.001: padding in a "
        f"batch moves the floats a little). Unscorable rows (the generator's empty reviews), kept and counted: "
        f"{unscorable}. Load average at the end: {load:.1f} on {os.cpu_count()} CPUs.",
    ]
    return "\n".join(lines)
