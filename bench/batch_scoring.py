"""Batch scoring of a review file: batches through the handler vs the model alone and a one-row loop, same run.

The bundled MiniLM, labelled and packed with the repository's handler as training packs a version
(``bench.endpoint_load``'s archive), scores synthetic reviews (``data.synthetic_reviews``) with
``model_deploy.batch_scoring.score_file``, the code behind ``python -m pipelines predict --input``:

1. **one row at a time** (the baseline): the same handler, one review per handler call (``batch_size=1``),
   as a loop over the rows calling an endpoint or ``predict_fn`` per review would;
2. **batches** (the template): ``batch_size=64`` (the handler's per-request cap), which the handler sorts by
   length and runs 8 at a time;
3. **the model alone** (the ceiling): the handler's ``predict_fn`` on the same reviews in batches of 64, read
   beforehand, no CSV, no JSON: the in-process batched rate batch scoring is measured against.

The first two read and write the CSV the same streaming way, so their ratio is the batching's. The file is cut
into :data:`ROUNDS` slices and the modes take turns, slice by slice, so that a change in the machine's load
(other work on shared cores) weighs on both alike. The baseline scores only the first rows of each slice (a
loop over all of them would take most of an hour on 2 cores; rows/s of a loop does not depend on how long it
runs); the two answers are checked to agree on the rows both scored.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

from model_deploy.batch_scoring import TEXT_COLUMN

TITLE = "Batch scoring a review file: batches through the handler vs the model alone and one row at a time"
ROUNDS = 10
MODEL_ALONE = "the model alone: predict_fn, batches of 64"


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


def _texts(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row[TEXT_COLUMN] for row in csv.DictReader(handle) if row.get(TEXT_COLUMN, "").strip()]


def run(quick: bool) -> str:
    # As the handler sets it when it is the first to load torch (here, the archive's packing is).
    openmp_preset = "torch" not in sys.modules
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from bench.endpoint_load import _archive
    from data.synthetic_reviews import write_synthetic_reviews
    from model_deploy.batch_scoring import load_version, score_file

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows, loop_rows = (1_000, 50) if quick else (4_000, 200)
    modes = {"one row at a time": 1, "batches of 64": 64}
    totals = {name: [0, 0, 0.0] for name in [*modes, MODEL_ALONE]}  # rows, unscorable rows, seconds
    agree: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-scoring-") as workspace:
        root = Path(workspace)
        archive = _archive(root)
        (reviews,) = write_synthetic_reviews(root / "reviews", rows, files=1, seed=3)
        slices = _slices(reviews, root / "slices", ROUNDS, loop_rows // ROUNDS)
        score = load_version(archive, root / "host")
        score(["warm-up review, loads the kernels"])
        from model_deploy.local.host import load

        host = load(archive, root / "alone")
        for index, (batch_file, loop_file) in enumerate(slices):
            texts = _texts(batch_file)
            started = time.perf_counter()
            for start in range(0, len(texts), 64):
                host.handler.predict_fn(texts[start : start + 64], host.model)
            totals[MODEL_ALONE][2] += time.perf_counter() - started
            totals[MODEL_ALONE][0] += len(texts)
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
        host.close()
    base_rate = totals["one row at a time"][0] / totals["one row at a time"][2]
    lines = [
        f"{rows:,} synthetic reviews (`data.synthetic_reviews`, seed 3), the bundled MiniLM packed as a version "
        "with the repository's handler, max length 128, scored in this process by `score_file` "
        "(`python -m pipelines predict --input ... --version N`).",
        "",
        "| mode | rows | seconds | rows/s | vs one row at a time | vs the model alone |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    alone_rate = totals[MODEL_ALONE][0] / totals[MODEL_ALONE][2]
    for name, (done, _, seconds) in totals.items():
        rate = done / seconds
        lines.append(
            f"| {name} | {done:,} | {seconds:.1f} | {rate:.1f} | {rate / base_rate:.2f}x | {rate / alone_rate:.0%} |"
        )
    batch_share = totals["batches of 64"][0] / totals["batches of 64"][2] / alone_rate
    unscorable = {name: int(entry[1]) for name in modes for entry in [totals[name]]}
    lines += [
        "",
        f"The three took turns over {ROUNDS} slices of the file; the loop scored the first "
        f"{loop_rows // ROUNDS:,} rows of each ({loop_rows:,} in all). On those rows the two agree on "
        f"{sum(agree)}/{len(agree)} rows (same status and sentiment, probability within 0.001: padding in a "
        f"batch moves the floats a little). Unscorable rows (the generator's empty reviews), kept and counted: "
        f"{unscorable}. Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, shared "
        "with other work.",
        "",
        f"Target: batch scoring at least 80% of the model's in-process batched rate (the same handler and "
        f"backend): **{batch_share:.0%}**, {'met' if batch_share >= 0.8 else '**not met**'}. OpenMP threads "
        + (
            "wait passively, as in a server process."
            if openmp_preset
            else "kept this process's earlier setting."
        ),
    ]
    return "\n".join(lines)
