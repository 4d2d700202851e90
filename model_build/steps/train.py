"""Training step: fine-tune a pretrained transformer into the 3-class review sentiment model.

Runs under the SageMaker training contract: the channels ``train`` and ``validation`` hold the Parquet files the
processing step wrote (``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_VALIDATION``), the channel ``serving`` holds the
serving handler (``SM_CHANNEL_SERVING``; not ``code``, which SageMaker's ModelTrainer reserves for this script's
own source), hyperparameters arrive as ``--name value`` arguments, and everything under
``SM_MODEL_DIR`` becomes ``model.tar.gz``. Every path has a default, so the same command runs locally.

What it does that the course's script did not: it passes the attention mask, pads each batch only to its own
longest row, uses AdamW with a linear warmup/decay schedule, validates on the whole validation split after every
epoch and keeps the best epoch. Under ``torchrun`` (which SageMaker's ``torch_distributed`` starts on every
instance) it trains data-parallel: every process reads its own shard of each epoch, and only rank 0 writes.

Class-weighted loss (``--class-weighted-loss``, on by default): the cross-entropy weighs each review by the
inverse frequency of its class in the train split, ``n / (classes present * count of the class)``, so that each
class contributes as much to the loss as the others and an imbalanced split does not collapse into predicting
the majority class (the accuracy of which can look good). On a balanced split (the default
``BalanceDataset=true``) every weight is about 1, so leaving it on changes nothing there; the weights are
logged and written to ``training_metrics.json``. Validation loss uses the same weights: it measures, on unseen
reviews, the objective that training minimises.

The saved model folder serves by itself: ``save_pretrained`` writes the model with its label map and the
tokenizer (whose ``model_max_length`` is the training ``--max-seq-length``, so serving truncates the same way),
and the serving handler is copied into ``code/``, where the SageMaker PyTorch serving container looks for it.

Checkpoints: when ``--checkpoint-dir`` exists (SageMaker creates ``/opt/ml/checkpoints`` when the job has a
checkpoint S3 location, and syncs it there), the state after each epoch is written to ``last.pt`` and the best
epoch's weights to ``best.pt``. A restarted job (e.g. after a spot interruption) resumes after the last finished
epoch. A checkpoint from a run with other settings is refused rather than silently mixed in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import features
from arguments import non_negative_int, positive_int, str_to_bool

logger = logging.getLogger("train")

NUM_LABELS = len(features.SENTIMENT_BY_LABEL_ID)
REQUIRED_COLUMNS = ("review_id", "label_id", "input_ids")
SENTIMENT_COLUMN = "sentiment"
SERVING_FILES = ("*.py", "requirements.txt")
CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"
METRICS_FILE = "training_metrics.json"
CURVES_FILE = "training_curves.png"


class TrainingInputError(Exception):
    """Bad input found before training starts: the message names what is wrong and where."""


# --------------------------------------------------------------------------------------------- arguments
def _add(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """Accept ``--name-with-hyphens`` (as the pipeline passes it) and ``--name_with_underscores``."""
    flags = [f"--{name}"]
    if "-" in name:
        flags.append(f"--{name.replace('-', '_')}")
    parser.add_argument(*flags, **kwargs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Hyperparameters: defaults match model_build/pipeline_spec.py PARAMETERS.
    _add(parser, "pretrained-model", default="roberta-base", help="Hugging Face model id or local folder.")
    _add(parser, "epochs", type=positive_int, default=3)
    _add(parser, "learning-rate", type=float, default=5e-5)
    _add(parser, "train-batch-size", type=positive_int, default=32, help="Per process.")
    _add(parser, "validation-batch-size", type=positive_int, default=64)
    _add(parser, "train-steps-per-epoch", type=non_negative_int, default=0, help="Cap; 0 = whole split.")
    _add(parser, "validation-steps-per-epoch", type=non_negative_int, default=0, help="Cap; 0 = whole split.")
    _add(parser, "max-seq-length", type=positive_int, default=128)
    _add(parser, "freeze-bert-layer", type=str_to_bool, default=False, help="Train only the classifier head.")
    _add(parser, "warmup-ratio", type=float, default=0.1)
    _add(parser, "weight-decay", type=float, default=0.01)
    _add(
        parser,
        "class-weighted-loss",
        type=str_to_bool,
        default=True,
        help="Weight the cross-entropy by inverse class frequency in the train split (all ~1 when balanced).",
    )
    _add(parser, "seed", type=int, default=42)
    _add(
        parser,
        "pad-to-max-length",
        type=str_to_bool,
        default=False,
        help="Pad every batch to --max-seq-length instead of its longest row (the benchmark's baseline).",
    )
    _add(
        parser,
        "group-by-length",
        type=str_to_bool,
        default=True,
        help="Batch reviews of similar length together (Hugging Face's group_by_length), so padding is small.",
    )
    # The container contract: channels and output folders.
    _add(parser, "train-data", type=Path, default=Path(env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")))
    _add(
        parser,
        "validation-data",
        type=Path,
        default=Path(env("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")),
    )
    _add(
        parser,
        "code-dir",
        type=Path,
        default=Path(env("SM_CHANNEL_SERVING", "/opt/ml/input/data/serving")),
        help="The serving handler (inference.py, requirements.txt), copied into <model-dir>/code/.",
    )
    _add(parser, "model-dir", type=Path, default=Path(env("SM_MODEL_DIR", "/opt/ml/model")))
    _add(
        parser,
        "output-data-dir",
        type=Path,
        default=Path(env("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")),
    )
    _add(
        parser,
        "checkpoint-dir",
        default=None,
        help="Default: /opt/ml/checkpoints when it exists (SageMaker checkpointing is on). '' disables.",
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # SageMaker adds its own hyperparameters (e.g. sagemaker_program); say what is ignored, never drop silently.
        logger.warning("ignoring unknown arguments: %s", " ".join(unknown))
    if not 0 <= args.warmup_ratio < 1:
        parser.error(f"--warmup-ratio must be in [0, 1), got {args.warmup_ratio}")
    if args.learning_rate <= 0:
        parser.error(f"--learning-rate must be positive, got {args.learning_rate}")
    return args


def resolve_checkpoint_dir(value: str | None) -> Path | None:
    if value is None:
        default = Path("/opt/ml/checkpoints")
        return default if default.is_dir() else None
    return Path(value) if value else None


# --------------------------------------------------------------------------------------------- data
@dataclass
class Split:
    """One split as the model sees it: token ids (unpadded) and class indices, with the review ids."""

    name: str
    review_ids: list[str]
    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def read_split(folder: Path, name: str, max_seq_length: int) -> Split:
    """Read every ``*.parquet`` under ``folder``; refuse an empty/missing channel or a label outside 0-2."""
    import pyarrow.parquet as pq

    if not folder.is_dir():
        raise TrainingInputError(f"the {name} data folder {folder} does not exist")
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise TrainingInputError(f"the {name} data folder {folder} has no *.parquet files")
    split = Split(name, [], [], [])
    truncated = 0
    for file in files:
        table = pq.read_table(file)
        missing = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
        if missing:
            raise TrainingInputError(
                f"{file} lacks the column(s) {', '.join(missing)}; it has {', '.join(table.column_names)}"
            )
        columns = table.select(list(REQUIRED_COLUMNS)).to_pydict()
        sentiments = (
            table.column(SENTIMENT_COLUMN).to_pylist() if SENTIMENT_COLUMN in table.column_names else None
        )
        for row, (review_id, label, ids) in enumerate(
            zip(columns["review_id"], columns["label_id"], columns["input_ids"], strict=True)
        ):
            where = f"{file} row {row} (review_id {review_id})"
            if label is None or not 0 <= label < NUM_LABELS:
                raise TrainingInputError(f"{where}: label_id {label!r} is outside 0-{NUM_LABELS - 1}")
            if sentiments is not None and sentiments[row] != features.SENTIMENT_BY_LABEL_ID[label]:
                raise TrainingInputError(
                    f"{where}: label_id {label} means sentiment {features.SENTIMENT_BY_LABEL_ID[label]}, "
                    f"but the sentiment column says {sentiments[row]!r}"
                )
            if not ids:
                raise TrainingInputError(f"{where}: input_ids is empty")
            if len(ids) > max_seq_length:
                # Keep the closing special token (</s> or [SEP]) the tokenizer put last.
                ids = [*ids[: max_seq_length - 1], ids[-1]]
                truncated += 1
            split.review_ids.append(str(review_id))
            split.input_ids.append([int(token) for token in ids])
            split.labels.append(int(label))
    if not split.labels:
        raise TrainingInputError(f"the {name} data in {folder} has no rows ({len(files)} Parquet file(s))")
    if truncated:
        logger.info(
            "%s: truncated %d of %d reviews to %d tokens", name, truncated, len(split), max_seq_length
        )
    counts = {features.SENTIMENT_BY_LABEL_ID[label]: split.labels.count(label) for label in range(NUM_LABELS)}
    logger.info("%s: %d reviews from %d file(s), by sentiment %s", name, len(split), len(files), counts)
    return split


class SplitDataset:
    """Map-style dataset over a :class:`Split`; ``index`` lets a batch say which reviews it holds."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_ids": self.split.input_ids[index], "labels": self.split.labels[index], "index": index}


class PaddingCollator:
    """``DataCollatorWithPadding`` that also returns the dataset indices of the batch.

    ``pad_to_max_length=False`` pads to the longest row of the batch (dynamic padding); the attention mask is
    built here, so pads are never attended to.
    """

    def __init__(self, tokenizer: Any, max_seq_length: int, pad_to_max_length: bool = False) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(
            tokenizer,
            padding="max_length" if pad_to_max_length else "longest",
            max_length=max_seq_length if pad_to_max_length else None,
        )

    def __call__(self, items: list[dict[str, Any]]) -> tuple[dict[str, Any], list[int]]:
        indices = [item["index"] for item in items]
        batch = self.pad([{"input_ids": item["input_ids"], "labels": item["labels"]} for item in items])
        return batch, indices


# --------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Distributed:
    """Where this process stands: torchrun (and SageMaker's torch_distributed) set these variables."""

    world_size: int
    rank: int
    local_rank: int

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
            rank=int(os.environ.get("RANK", "0")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_device(dist_env: Distributed) -> Any:
    import torch

    if torch.cuda.is_available():
        device = torch.device("cuda", dist_env.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if dist_env.enabled:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def all_reduce_sum(values: list[float], device: Any, dist_env: Distributed) -> list[float]:
    """Sum per-process totals (loss sums, counts) so every rank reports the whole split's numbers."""
    if not dist_env.enabled:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def class_weights(labels: Sequence[int], num_labels: int = NUM_LABELS) -> list[float]:
    """Inverse-frequency weight per class: ``n / (classes present * count)``; 1.0 for an absent class.

    The weights sum the per-class loss shares to the same total: every class then counts as much as the
    others whatever its size. A class absent from the train split never is a target, so its weight is unused;
    1.0 keeps the logged numbers readable.
    """
    counts = [0] * num_labels
    for label in labels:
        counts[label] += 1
    present = sum(1 for count in counts if count)
    total = sum(counts)
    return [total / (present * count) if count else 1.0 for count in counts]


def describe_weights(weights: Sequence[float] | None) -> str:
    """``negative 2.3333, neutral 7.0000, positive 0.4762`` (by sentiment name), or why there are none."""
    if weights is None:
        return "off (plain cross-entropy)"
    return ", ".join(
        f"{features.SENTIMENT_NAMES[features.SENTIMENT_BY_LABEL_ID[label]]} {weight:.4f}"
        for label, weight in enumerate(weights)
    )


def make_train_sampler(
    split: Split, batch_size: int, dist_env: Distributed, seed: int, group_by_length: bool
) -> Any:
    """A shuffling sampler that gives each process its own shard; ``set_epoch`` reshuffles per epoch."""
    from torch.utils.data import DistributedSampler

    if group_by_length:
        from transformers.trainer_pt_utils import DistributedLengthGroupedSampler

        return DistributedLengthGroupedSampler(
            batch_size,
            lengths=split.lengths,
            num_replicas=dist_env.world_size,
            rank=dist_env.rank,
            seed=seed,
        )
    return DistributedSampler(
        SplitDataset(split), num_replicas=dist_env.world_size, rank=dist_env.rank, shuffle=True, seed=seed
    )


# --------------------------------------------------------------------------------------------- model
def load_model_and_tokenizer(pretrained_model: str) -> tuple[Any, Any]:
    """Load before any training, and turn every loading failure into one clear error."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    id2label = {label: str(sentiment) for label, sentiment in features.SENTIMENT_BY_LABEL_ID.items()}
    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model)
        model = AutoModelForSequenceClassification.from_pretrained(
            pretrained_model,
            num_labels=NUM_LABELS,
            id2label=id2label,
            label2id={name: label for label, name in id2label.items()},
        )
    except Exception as error:  # OSError, ValueError, EnvironmentError...: all mean "cannot load it"
        raise TrainingInputError(
            f"cannot load the pretrained model {pretrained_model!r}: {type(error).__name__}: {error}"
        ) from error
    if tokenizer.pad_token_id is None:
        raise TrainingInputError(f"the tokenizer of {pretrained_model!r} has no padding token")
    return model, tokenizer


def check_token_ids(splits: Sequence[Split], vocab_size: int, pretrained_model: str) -> None:
    """Ids beyond the vocabulary mean the data was tokenized for another model: say so before training."""
    for split in splits:
        largest = max(max(ids) for ids in split.input_ids)
        if largest >= vocab_size:
            raise TrainingInputError(
                f"the {split.name} data has token id {largest}, but {pretrained_model!r} has a vocabulary of "
                f"{vocab_size}: was it processed with another --pretrained-model?"
            )


def freeze_base_model(model: Any) -> None:
    for parameter in model.base_model.parameters():
        parameter.requires_grad = False


def make_optimizer(model: Any, learning_rate: float, weight_decay: float) -> Any:
    """AdamW without weight decay on biases and LayerNorm weights (the Hugging Face convention)."""
    import torch

    decay: list[Any] = []
    no_decay: list[Any] = []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
    )


# --------------------------------------------------------------------------------------------- loops
@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    train_samples: int
    train_seconds: float

    @property
    def train_samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0

    def log_line(self) -> str:
        """The line the pipeline's metric definitions parse: plain decimals, never scientific notation."""
        return (
            f"epoch={self.epoch} train_loss={self.train_loss:.6f} "
            f"val_loss={self.val_loss:.6f} val_acc={self.val_acc:.6f}"
        )


def train_one_epoch(
    model: Any,
    loader: Any,
    optimizer: Any,
    scheduler: Any,
    device: Any,
    max_steps: int,
    show_progress: bool,
    description: str,
    loss_weights: Any = None,
) -> tuple[float, int, list[int]]:
    """Returns (sum of per-review losses, reviews seen, dataset indices seen) of this process.

    ``loss_weights`` (a tensor of one weight per class, or None) weighs the cross-entropy; see
    :func:`class_weights`.
    """
    import torch
    from tqdm.auto import tqdm

    model.train()
    loss_sum, seen, indices_seen = 0.0, 0, []
    total = min(len(loader), max_steps) if max_steps else len(loader)
    with tqdm(total=total, desc=description, disable=not show_progress, leave=False) as progress:
        for step, (batch, indices) in enumerate(loader):
            if max_steps and step >= max_steps:
                break
            batch = {key: value.to(device) for key, value in batch.items()}
            labels = batch.pop("labels")
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels, weight=loss_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(indices)
            seen += len(indices)
            indices_seen.extend(indices)
            progress.update()
            progress.set_postfix(loss=f"{loss.item():.4f}")
    return loss_sum, seen, indices_seen


def evaluate(
    model: Any, loader: Any, device: Any, max_steps: int, show_progress: bool, loss_weights: Any = None
) -> tuple[float, int, int]:
    """Returns (sum of per-review losses, correct predictions, reviews) over this process's batches.

    The loss is weighted as in training (``loss_weights``), so that it is the same objective on other reviews.
    """
    import torch
    from tqdm.auto import tqdm

    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    total = min(len(loader), max_steps) if max_steps else len(loader)
    with torch.no_grad():
        for step, (batch, indices) in enumerate(
            tqdm(loader, total=total, desc="validation", disable=not show_progress, leave=False)
        ):
            if max_steps and step >= max_steps:
                break
            batch = {key: value.to(device) for key, value in batch.items()}
            labels = batch.pop("labels")
            logits = model(**batch).logits
            loss = torch.nn.functional.cross_entropy(logits, labels, weight=loss_weights)
            loss_sum += loss.item() * len(indices)
            correct += (logits.argmax(dim=-1) == labels).sum().item()
            seen += len(indices)
    return loss_sum, correct, seen


def shard_digest(review_ids: Sequence[str]) -> str:
    """A short fingerprint of the reviews one process trained on: ranks of one epoch must differ."""
    return hashlib.sha256("\n".join(sorted(review_ids)).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------- checkpoints
def run_signature(args: argparse.Namespace, dist_env: Distributed, train_size: int) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed."""
    return {
        "pretrained_model": str(args.pretrained_model),
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "train_batch_size": args.train_batch_size,
        "train_steps_per_epoch": args.train_steps_per_epoch,
        "max_seq_length": args.max_seq_length,
        "freeze_bert_layer": args.freeze_bert_layer,
        "class_weighted_loss": args.class_weighted_loss,
        "seed": args.seed,
        "world_size": dist_env.world_size,
        "train_size": train_size,
    }


def save_atomically(state: dict[str, Any], path: Path) -> None:
    import torch

    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def load_checkpoint(checkpoint_dir: Path | None, signature: dict[str, Any]) -> dict[str, Any] | None:
    import torch

    if checkpoint_dir is None or not (checkpoint_dir / CHECKPOINT_LAST).is_file():
        return None
    state = torch.load(checkpoint_dir / CHECKPOINT_LAST, map_location="cpu", weights_only=False)
    if state.get("signature") != signature:
        raise TrainingInputError(
            f"{checkpoint_dir / CHECKPOINT_LAST} was written by a run with other settings "
            f"({state.get('signature')} vs {signature}): empty the checkpoint folder to start afresh"
        )
    return state


# --------------------------------------------------------------------------------------------- outputs
def copy_serving_code(code_dir: Path, model_dir: Path) -> list[Path]:
    """Copy the handler into ``<model>/code/``: the PyTorch serving container imports it from there."""
    target = model_dir / "code"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for pattern in SERVING_FILES:
        for source in sorted(code_dir.glob(pattern)):
            if source.name == "__init__.py":
                continue
            copied.append(Path(shutil.copy2(source, target / source.name)))
    return copied


def check_serving_code(code_dir: Path) -> None:
    if not (code_dir / "inference.py").is_file():
        raise TrainingInputError(
            f"the serving code folder {code_dir} has no inference.py (the 'serving' channel / --code-dir); "
            "without it model.tar.gz cannot serve itself"
        )


def plot_training_curves(history: Sequence[EpochResult], best_epoch: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [result.epoch for result in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [r.train_loss for r in history], marker="o", label="train")
    loss_axis.plot(epochs, [r.val_loss for r in history], marker="o", label="validation")
    loss_axis.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    loss_axis.legend()
    accuracy_axis.plot(epochs, [r.val_acc for r in history], marker="o", color="tab:green")
    accuracy_axis.axvline(best_epoch, color="grey", linestyle="--", label=f"kept: epoch {best_epoch}")
    accuracy_axis.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    accuracy_axis.legend()
    for axis in (loss_axis, accuracy_axis):
        axis.set_xticks(epochs)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def fail(message: str) -> int:
    """Report a bad input: on stderr, and in SageMaker's failure file (shown as the job's FailureReason)."""
    logger.error("%s", message)
    output_dir = os.environ.get("SM_OUTPUT_DIR")
    if output_dir and Path(output_dir).is_dir():
        (Path(output_dir) / "failure").write_text(message[:1000], encoding="utf-8")
    return 2


# --------------------------------------------------------------------------------------------- main
def train(args: argparse.Namespace) -> list[EpochResult]:
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup, set_seed

    dist_env = Distributed.from_env()
    checkpoint_dir = resolve_checkpoint_dir(args.checkpoint_dir)

    # Every check on the inputs happens before the first step.
    check_serving_code(args.code_dir)
    train_split = read_split(args.train_data, "train", args.max_seq_length)
    validation_split = read_split(args.validation_data, "validation", args.max_seq_length)
    # Before the model is built: its new classifier head is drawn from the global generator, which torch
    # seeds at random in every process.
    set_seed(args.seed)
    model, tokenizer = load_model_and_tokenizer(args.pretrained_model)
    check_token_ids((train_split, validation_split), model.config.vocab_size, args.pretrained_model)

    device = setup_device(dist_env)
    if args.freeze_bert_layer:
        freeze_base_model(model)
    model.to(device)
    # From the whole train split (every process reads all of it), so every rank weighs the same way.
    weights = class_weights(train_split.labels) if args.class_weighted_loss else None
    loss_weights = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
    if dist_env.is_main:
        logger.info("class weights of the loss: %s", describe_weights(weights))

    collator = PaddingCollator(tokenizer, args.max_seq_length, args.pad_to_max_length)
    sampler = make_train_sampler(
        train_split, args.train_batch_size, dist_env, args.seed, args.group_by_length
    )
    train_loader = DataLoader(
        SplitDataset(train_split), batch_size=args.train_batch_size, sampler=sampler, collate_fn=collator
    )
    # Validation: each process scores every world_size-th review, then the sums are added up: no review is
    # counted twice, none is left out.
    validation_shard = list(range(dist_env.rank, len(validation_split), dist_env.world_size))
    validation_loader = DataLoader(
        torch.utils.data.Subset(SplitDataset(validation_split), validation_shard),
        batch_size=args.validation_batch_size,
        collate_fn=collator,
    )

    steps_per_epoch = len(train_loader)
    if args.train_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.train_steps_per_epoch)
    total_steps = steps_per_epoch * args.epochs
    optimizer = make_optimizer(model, args.learning_rate, args.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(args.warmup_ratio * total_steps), total_steps
    )

    history: list[EpochResult] = []
    best: EpochResult | None = None
    best_state: dict[str, Any] | None = None
    signature = run_signature(args, dist_env, len(train_split))
    resumed = load_checkpoint(checkpoint_dir, signature)
    if resumed and checkpoint_dir is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        history = [EpochResult(**result) for result in resumed["history"]]
        best = next(result for result in history if result.epoch == resumed["best_epoch"])
        best_state = torch.load(checkpoint_dir / CHECKPOINT_BEST, map_location="cpu", weights_only=True)
        logger.info("resuming from %s after epoch %d", checkpoint_dir, history[-1].epoch)

    trained_model = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if dist_env.enabled
        else model
    )
    if dist_env.is_main:
        logger.info(
            "training %s on %s: %d process(es), %d reviews, %d steps per epoch, %d epochs, warmup %d steps",
            args.pretrained_model,
            device,
            dist_env.world_size,
            len(train_split),
            steps_per_epoch,
            args.epochs,
            math.ceil(args.warmup_ratio * total_steps),
        )

    for epoch in range(len(history) + 1, args.epochs + 1):
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        loss_sum: float
        seen: float
        loss_sum, seen, indices = train_one_epoch(
            trained_model,
            train_loader,
            optimizer,
            scheduler,
            device,
            args.train_steps_per_epoch,
            dist_env.is_main,
            f"epoch {epoch}/{args.epochs}",
            loss_weights,
        )
        seconds = time.perf_counter() - started
        logger.info(
            "rank %d/%d epoch %d: trained on %d reviews (shard %s)",
            dist_env.rank,
            dist_env.world_size,
            epoch,
            len(set(indices)),
            shard_digest([train_split.review_ids[index] for index in indices]),
        )
        # The unwrapped model: DDP's forward would expect every rank to run as many batches as the others.
        val_loss_sum, correct, val_seen = evaluate(
            model, validation_loader, device, args.validation_steps_per_epoch, dist_env.is_main, loss_weights
        )
        loss_sum, seen, total_val_loss, total_correct, total_val_seen = all_reduce_sum(
            [loss_sum, seen, val_loss_sum, correct, val_seen], device, dist_env
        )
        result = EpochResult(
            epoch=epoch,
            train_loss=loss_sum / seen,
            val_loss=total_val_loss / total_val_seen,
            val_acc=total_correct / total_val_seen,
            train_samples=int(seen),
            train_seconds=seconds,
        )
        history.append(result)
        improved = best is None or (result.val_acc, -result.val_loss) > (best.val_acc, -best.val_loss)
        if improved:
            best = result
            if dist_env.is_main:  # only rank 0 writes the model, so only it keeps the best weights
                best_state = {
                    key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()
                }
        if dist_env.is_main:
            print(result.log_line(), flush=True)
            if checkpoint_dir is not None:
                checkpoint_dir.mkdir(parents=True, exist_ok=True)
                if improved and best_state is not None:
                    save_atomically(best_state, checkpoint_dir / CHECKPOINT_BEST)
                save_atomically(
                    {
                        "signature": signature,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "history": [asdict(r) for r in history],
                        "best_epoch": best.epoch if best is not None else epoch,
                    },
                    checkpoint_dir / CHECKPOINT_LAST,
                )

    assert best is not None
    if dist_env.is_main:
        assert best_state is not None
        model.load_state_dict(best_state)
        save_outputs(args, model, tokenizer, history, best, weights)
    if dist_env.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return history


def save_outputs(
    args: argparse.Namespace,
    model: Any,
    tokenizer: Any,
    history: Sequence[EpochResult],
    best: EpochResult,
    weights: Sequence[float] | None = None,
) -> None:
    args.model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.model_dir)
    tokenizer.model_max_length = args.max_seq_length  # serving truncates the way training did
    tokenizer.save_pretrained(args.model_dir)
    copied = copy_serving_code(args.code_dir, args.model_dir)
    logger.info(
        "saved the model of epoch %d (val_acc %.4f) to %s, serving code: %s",
        best.epoch,
        best.val_acc,
        args.model_dir,
        ", ".join(path.name for path in copied),
    )

    args.output_data_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "best_epoch": best.epoch,
        "best_val_acc": best.val_acc,
        "best_val_loss": best.val_loss,
        "class_weights": None
        if weights is None
        else {
            features.SENTIMENT_NAMES[features.SENTIMENT_BY_LABEL_ID[label]]: weight
            for label, weight in enumerate(weights)
        },
        "epochs": [
            {**asdict(result), "train_samples_per_second": result.train_samples_per_second}
            for result in history
        ],
        "hyperparameters": {
            key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
        },
    }
    (args.output_data_dir / METRICS_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot_training_curves(history, best.epoch, args.output_data_dir / CURVES_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    args = parse_args(argv)
    try:
        train(args)
    except TrainingInputError as error:
        return fail(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
