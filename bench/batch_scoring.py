"""Batch scoring of a review file: batches through the handler vs a one-row-at-a-time loop, same run.

The bundled MiniLM, labelled and packed with the repository's handler as training packs a version
(``bench.endpoint_load``'s archive), scores synthetic reviews (``data.synthetic_reviews``) with
``model_deploy.batch_scoring.score_file``, the code behind ``python -m pipelines predict --input``:

1. **one row at a time** (the baseline): the same handler, one review per handler call (``batch_size=1``),
   as a loop over the rows calling an endpoint or ``predict_fn`` per review would;
2. **batches** (the template): ``batch_size=64`` (the handler's per-request cap), which the handler sorts by
   length and runs 8 at a time.

Both read and write the CSV the same streaming way, so the ratio is the batching's. The file is cut into
:data:`ROUNDS` slices and the two modes take turns, slice by slice, so that a change in the machine's load
(other work on shared cores) weighs on both alike. The baseline scores only the first rows of each slice (a
loop over all of them would take most of an hour on 2 cores; rows/s of a loop does not depend on how long it
runs); the two answers are checked to agree on the rows both scored.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from pathlib import Path

TITLE = "Batch scoring a review file: batches through the handler vs one row at a time"
ROUNDS = 10


def _slices(source: Path, folder: Path, rounds: int, loop_rows: int) -> list[tuple[Path, Path]]:
    """The file cut into ``rounds`` CSV slices, each with a second file of its first ``loop_rows`` rows."""
    folder.mkdir()
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header, rows = next(reader), list(reader)
    size = -(-len(rows) // rounds)
    slices = []
    for index in range(rounds):
        part = rows[index * size : (index + 1) * size]
        pair = (folder / f"batch-{index}.csv", folder / f"loop-{index}.csv")
        for path, chosen in zip(pair, (part, part[:loop_rows]), strict=True):
            with path.open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(header)
                writer.writerows(chosen)
        slices.append(pair)
    return slices


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
    modes = {"one row at a time": 1, "batches of 64": 64}
    totals = {name: [0, 0, 0.0] for name in modes}  # rows, unscorable rows, seconds
    agree: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-scoring-") as workspace:
        root = Path(workspace)
        archive = _archive(root)
        (reviews,) = write_synthetic_reviews(root / "reviews", rows, files=1, seed=3)
        slices = _slices(reviews, root / "slices", ROUNDS, loop_rows // ROUNDS)
        score = load_version(archive, root / "host")
        score(["warm-up review, loads the kernels"])
        for index, (batch_file, loop_file) in enumerate(slices):
            outputs = {}
            for name, batch_size in modes.items():
                source = loop_file if batch_size == 1 else batch_file
                outputs[name] = root / f"out-{batch_size}-{index}.csv"
                started = time.perf_counter()
                result = score_file(source, outputs[name], score, batch_size=batch_size, progress=False)
                totals[name][2] += time.perf_counter() - started
                totals[name][0] += result.rows
                totals[name][1] += result.unscorable_rows
            loop_answers = _answers(outputs["one row at a time"], loop_rows)
            batch_answers = _answers(outputs["batches of 64"], len(loop_answers))
            agree += [
                a[:2] == b[:2] and abs(a[2] - b[2]) < 1e-3
                for a, b in zip(loop_answers, batch_answers, strict=True)
            ]
            print(f"round {index + 1}/{ROUNDS}: rows, unscorable, seconds {totals}", flush=True)
    base_rate = totals["one row at a time"][0] / totals["one row at a time"][2]
    lines = [
        f"{rows:,} synthetic reviews (`data.synthetic_reviews`, seed 3), the bundled MiniLM packed as a version "
        "with the repository's handler, max length 128, scored in this process by `score_file` "
        "(`python -m pipelines predict --input ... --version N`).",
        "",
        "| mode | rows | seconds | rows/s | vs one row at a time |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (done, _, seconds) in totals.items():
        rate = done / seconds
        lines.append(f"| {name} | {done:,} | {seconds:.1f} | {rate:.1f} | {rate / base_rate:.2f}x |")
    unscorable = {name: int(entry[1]) for name, entry in totals.items()}
    lines += [
        "",
        f"The two took turns over {ROUNDS} slices of the file; the loop scored the first "
        f"{loop_rows // ROUNDS:,} rows of each ({loop_rows:,} in all). On those rows the two agree on "
        f"{sum(agree)}/{len(agree)} rows (same status and sentiment, probability within 0.001: padding in a "
        f"batch moves the floats a little). Unscorable rows (the generator's empty reviews), kept and counted: "
        f"{unscorable}. Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.",
    ]
    return "\n".join(lines)
