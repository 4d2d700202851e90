"""Tokenization in the processing step vs the course's method, the calls alone (``processing_step`` times
the whole step against the course's whole script).

Same run, same synthetic reviews (``data/synthetic_reviews.py``), same tokenizer (the bundled MiniLM; the
fast tokenizer of ``roberta-base`` is the same Rust ``tokenizers`` machinery), same truncation at 128:

- **course** (the baseline): the course's ``convert_to_bert_input_ids`` in a pandas ``apply``: one call per
  review with ``padding='max_length'``, ``return_tensors='pt'``, then ``.flatten().tolist()``. Its
  ``encode_plus`` is gone from transformers 5; a single-text ``tokenizer(...)`` call is what it became. The
  course also used the pure-Python ``RobertaTokenizer``, which transformers 5 no longer has: this baseline
  runs on the Rust tokenizer, so it is faster than the course's was, and the ratio is a lower bound;
- **transformers batched**: ``tokenizer(texts, truncation=True, max_length=128)`` per chunk, for reference;
- **reference**: this step's calls with the tokenizer's threads turned off: what the same work costs on one
  core, so cores x its rate is what perfect parallelism would give on this machine;
- **this step**: ``tokenization.tokenize`` per chunk: one ``encode_batch_fast`` call on the Rust tokenizer
  (all cores), unpadded, ids gathered into the flat array an Arrow list column is made of.

Each method runs in a fresh process of its own on the same texts, and their outputs are checked equal (the
course's without its padding) before any number is reported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
STEP = REPO_ROOT / "model_build" / "steps" / "preprocess.py"

TITLE = "Processing step: tokenization throughput"

MAX_SEQ_LENGTH = 128
TARGET_RATIO = 4.0


@dataclass(frozen=True)
class Timing:
    method: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


METHODS: dict[str, str] = {
    "course": "course: per-row call, padding='max_length', in pandas apply",
    "batched": "transformers batched: tokenizer(texts) per chunk",
    "one_core": "reference: this step's calls on one core (`TOKENIZERS_PARALLELISM=false`)",
    "step": "this step: tokenization.tokenize per chunk",
}
"""Each method runs in a fresh process of its own, so none inherits another's threads or heap (the course's
``return_tensors='pt'`` starts torch's thread pool, which then competes with the tokenizer's threads)."""


def time_method(method: str, texts: list[str], model_dir: Path, chunk_size: int) -> tuple[float, str]:
    """Seconds one method takes on ``texts``, and a digest of its token ids without padding (to compare)."""
    import hashlib

    import pandas as pd
    from transformers import AutoTokenizer

    sys.path.insert(0, str(STEP.parent))
    import tokenization

    from bench.course_preprocess import convert_to_bert_input_ids

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    backend = tokenization.load_tokenizer(str(model_dir), MAX_SEQ_LENGTH)
    chunks = [texts[start : start + chunk_size] for start in range(0, len(texts), chunk_size)]

    # method -> (the timed work, what makes its output comparable: unpadded token ids per row)
    pad = tokenizer.pad_token_id
    frame = pd.DataFrame({"review_body": texts})
    work: dict[str, tuple[Callable[[], Any], Callable[[Any], list[list[int]]]]] = {
        "course": (
            lambda: frame["review_body"].apply(
                lambda review: convert_to_bert_input_ids(tokenizer, review, MAX_SEQ_LENGTH)
            ),
            lambda output: [ids[: len(ids) - _trailing(ids, pad)] for ids in output],
        ),
        "batched": (
            lambda: [
                ids
                for chunk in chunks
                for ids in tokenizer(chunk, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
            ],
            lambda output: output,
        ),
        "one_core": (  # the same calls as "step"; its process runs with TOKENIZERS_PARALLELISM=false
            lambda: [tokenization.tokenize(backend, chunk).lists() for chunk in chunks],
            lambda output: [ids for array in output for ids in array.to_pylist()],
        ),
        "step": (
            lambda: [tokenization.tokenize(backend, chunk).lists() for chunk in chunks],
            lambda output: [ids for array in output for ids in array.to_pylist()],
        ),
    }
    timed, comparable = work[method]
    started = time.perf_counter()
    output = timed()
    seconds = time.perf_counter() - started
    digest = hashlib.sha1(repr(comparable(output)).encode()).hexdigest()
    return seconds, digest


def compare_tokenization(texts_file: Path, rows: int, model_dir: Path, chunk_size: int) -> list[Timing]:
    """Time every method, each in its own process, on the texts in ``texts_file``; they must agree."""
    import json

    timings, digests = [], set()
    for method, label in METHODS.items():
        command = [sys.executable, "-m", "bench.tokenization", "--method", method, str(texts_file)]
        command += [str(model_dir), str(chunk_size)]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false" if method == "one_core" else "true"}
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"the {method} method failed:\n{result.stderr[-3000:]}")
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        timings.append(
            Timing(label.replace("per chunk", f"per {chunk_size:,}-row chunk"), rows, measured["seconds"])
        )
        digests.add(measured["digest"])
    if len(digests) != 1:
        raise AssertionError("the methods gave different token ids: the comparison would be meaningless")
    return timings


def _trailing(ids: list[int], value: int) -> int:
    count = 0
    for token in reversed(ids):
        if token != value:
            break
        count += 1
    return count


def run(quick: bool) -> str:
    import json

    import pandas as pd

    from data.synthetic_reviews import write_synthetic_reviews
    from pipelines.models import bundled_model_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir = bundled_model_dir()
    compare_rows = 10_000 if quick else 100_000
    sys.path.insert(0, str(STEP.parent))
    import preprocess

    chunk_size = preprocess.parse_args([]).chunk_size  # the step's default

    with tempfile.TemporaryDirectory(prefix="bench-tokenization-") as workspace:
        root = Path(workspace)
        paths = write_synthetic_reviews(root / "compare", rows=compare_rows, files=1, seed=7)
        raw = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
        texts = [text for text in raw["Review Text"] if text.strip()]  # both methods get the same valid texts
        texts_file = root / "texts.json"
        texts_file.write_text(json.dumps(texts))
        print(f"tokenizing {len(texts):,} reviews four ways", flush=True)
        load_before = os.getloadavg()[0]
        timings = compare_tokenization(texts_file, len(texts), model_dir, chunk_size)
        load = (load_before, os.getloadavg()[0])
    return report(timings, len(raw), load, quick)


def report(timings: list[Timing], generated: int, load: tuple[float, float], quick: bool) -> str:
    baseline = timings[0].rows_per_second
    step = timings[-1].rows_per_second
    lines = [
        f"{timings[0].rows:,} synthetic reviews with text (of {generated:,} generated), bundled MiniLM tokenizer, "
        f"`max_length={MAX_SEQ_LENGTH}`, each method in a fresh process, one after the other; the token ids "
        "of all methods are checked equal (padding aside). One-minute load average before/after: "
        f"{load[0]:.2f}/{load[1]:.2f} (other work on the machine slows the all-core method most).",
        "",
        "| Method | Seconds | Rows/s | vs course |",
        "| --- | ---: | ---: | ---: |",
    ]
    for timing in timings:
        lines.append(
            f"| {timing.method} | {timing.seconds:.1f} | {timing.rows_per_second:,.0f} | "
            f"{timing.rows_per_second / baseline:.2f}x |"
        )
    ratio = step / baseline
    verdict = "met" if ratio >= TARGET_RATIO else "**not met**"
    cores = os.cpu_count() or 1
    ceiling = cores * timings[-2].rows_per_second
    lines += [
        "",
        f"Target: at least {TARGET_RATIO:.0f}x the course's rows/s: {verdict} ({ratio:.2f}x). "
        f"Perfect parallelism on this machine ({cores} cores x the one-core rate) would give {ceiling:,.0f} rows/s "
        f"= {ceiling / baseline:.2f}x the course; this step reaches {step / ceiling:.0%} of it.",
    ]
    if quick:
        lines += ["", "_Quick run: sizes reduced; run `make bench` for the numbers the targets refer to._"]
    return "\n".join(lines)


def _worker(argv: list[str]) -> None:
    """``python -m bench.tokenization --method NAME TEXTS_JSON MODEL_DIR CHUNK_SIZE``: one timing, as JSON."""
    import json

    method, texts_file, model_dir, chunk_size = argv
    texts = json.loads(Path(texts_file).read_text())
    seconds, digest = time_method(method, texts, Path(model_dir), int(chunk_size))
    print(json.dumps({"seconds": seconds, "digest": digest}))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    if sys.argv[1:2] == ["--method"]:
        _worker(sys.argv[2:])
    else:
        print(run(quick="--quick" in sys.argv))
