"""Training step: fine-tune a pretrained transformer into the 3-class review sentiment model.

Runs under the SageMaker training contract: the channels ``train`` and ``validation`` hold the Parquet files the
processing step wrote (``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_VALIDATION``), the channel ``serving`` holds the
serving handler (``SM_CHANNEL_SERVING``; not ``code``, which SageMaker's ModelTrainer reserves for this script's
own source), hyperparameters arrive as ``--name value`` arguments, and everything under ``SM_MODEL_DIR`` becomes
``model.tar.gz``. Every path has a default, so the same command runs locally.

The loop is Hugging Face's ``Trainer`` (subclassed where this recipe differs, callbacks for the log lines):
AdamW with a linear warmup/decay schedule, batches grouped by length and padded to their own longest row, a
class-weighted cross-entropy (``training_data.class_weights``; the validation loss is weighted alike), validation
after every epoch, the best epoch (highest validation macro-F1, ties to the lower validation loss) kept. Under
``torchrun`` (SageMaker's ``torch_distributed``) it trains data-parallel, each process on its shard of each
epoch, and only rank 0 writes. ``--train-steps-per-epoch`` caps an epoch to a block of that many steps.

The saved model folder serves by itself: the model with its label map, the tokenizer (``model_max_length`` is
``--max-seq-length``: serving truncates as training did), and the serving handler in ``code/``, where the
SageMaker PyTorch serving container looks for it.

Checkpoints: when ``--checkpoint-dir`` exists (SageMaker creates ``/opt/ml/checkpoints`` when the job has a
checkpoint S3 location, and syncs it), ``Trainer`` saves each epoch there (the last and the best are kept) beside
``run_settings.json``. A restarted job (e.g. after a spot interruption) resumes after the last finished epoch; a
checkpoint from a run with other settings is refused rather than silently mixed in.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import features
import tracking
from arguments import non_negative_int, positive_int, str_to_bool
from diagnostics import ACTIONS, REPORT_KEY, RULES, Diagnostics, TrainingStopped, option, top_share
from diagnostics_callback import LABEL_TOP_SHARE, PREDICTED_TOP_SHARE, DiagnosticsCallback, StepObservations
from training_data import (
    INDEX_KEY,
    NUM_LABELS,
    Split,
    SplitDataset,
    TrainingInputError,
    check_token_ids,
    class_weights,
    describe_weights,
    make_collator,
    model_inputs,
    read_split,
)
from transformers import ProgressCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

logger = logging.getLogger("train")

SERVING_FILES = ("*.py", "requirements.txt")
SETTINGS_FILE = "run_settings.json"
METRICS_FILE = tracking.TRAINING_REPORT_FILE
CURVES_FILE = "training_curves.png"
SELECTION_METRIC = "f1_macro"
"""Validation macro-F1 picks the best epoch (``validation:f1_macro``, the tuning objective, is the same number)."""
END_BARRIER_TIMEOUT = timedelta(minutes=10)


# --------------------------------------------------------------------------------------------- arguments
HYPERPARAMETERS: tuple[tuple[str, Any, Any, str], ...] = (
    # name, type, default (as model_build/pipeline_spec.py PARAMETERS), help
    ("pretrained-model", str, "roberta-base", "Hugging Face model id or local folder."),
    ("epochs", positive_int, 3, ""),
    ("learning-rate", float, 5e-5, ""),
    ("train-batch-size", positive_int, 32, "Per process."),
    ("validation-batch-size", positive_int, 64, ""),
    ("train-steps-per-epoch", non_negative_int, 0, "Cap; 0 = whole split."),
    ("validation-steps-per-epoch", non_negative_int, 0, "Cap: validate on the first N batches; 0 = all."),
    ("max-seq-length", positive_int, 128, ""),
    ("freeze-bert-layer", str_to_bool, False, "Train only the classifier head."),
    ("warmup-ratio", float, 0.1, "Share of the steps warming the learning rate up."),
    ("weight-decay", float, 0.01, ""),
    ("class-weighted-loss", str_to_bool, True, "Weigh the cross-entropy by inverse class frequency."),
    ("seed", int, 42, ""),
    ("pad-to-max-length", str_to_bool, False, "Pad to --max-seq-length (the benchmark's baseline)."),
    ("group-by-length", str_to_bool, True, "Batch reviews of similar length together: little padding."),
    *(
        (option(rule), str, "warn", f"The {rule} diagnostic: {', '.join(ACTIONS)} (diagnostics.py).")
        for rule in RULES
    ),
)
CHANNELS: tuple[tuple[str, str, str, str], ...] = (
    # name, SageMaker's variable, its value in a SageMaker container, help
    ("train-data", "SM_CHANNEL_TRAIN", "/opt/ml/input/data/train", ""),
    ("validation-data", "SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation", ""),
    ("code-dir", "SM_CHANNEL_SERVING", "/opt/ml/input/data/serving", "The serving handler, copied to code/."),
    ("model-dir", "SM_MODEL_DIR", "/opt/ml/model", ""),
    ("output-data-dir", "SM_OUTPUT_DATA_DIR", "/opt/ml/output/data", ""),
)
PATH_ARGUMENTS = (*(name.replace("-", "_") for name, *_ in CHANNELS), "checkpoint_dir")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--name-with-hyphens`` (as the pipeline passes them) or ``--name_with_underscores``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])

    def add(name: str, **kwargs: Any) -> None:
        parser.add_argument(*dict.fromkeys([f"--{name}", f"--{name.replace('-', '_')}"]), **kwargs)

    for name, kind, default, help_text in HYPERPARAMETERS:
        add(name, type=kind, default=default, help=help_text or None)
    for name, variable, container_path, help_text in CHANNELS:
        add(name, type=Path, default=Path(os.environ.get(variable, container_path)), help=help_text or None)
    add("checkpoint-dir", default=None, help="Default: /opt/ml/checkpoints when it exists. '' disables.")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # SageMaker adds its own hyperparameters (e.g. sagemaker_program); say what is ignored, never drop silently.
        logger.warning("ignoring unknown arguments: %s", " ".join(unknown))
    if not 0 <= args.warmup_ratio < 1:
        parser.error(f"--warmup-ratio must be in [0, 1), got {args.warmup_ratio}")
    if args.learning_rate <= 0:
        parser.error(f"--learning-rate must be positive, got {args.learning_rate}")
    for rule in RULES:
        action = getattr(args, option(rule).replace("-", "_"))
        if action not in ACTIONS:
            parser.error(f"--{option(rule)} must be one of {', '.join(ACTIONS)}, got {action!r}")
    return args


def diagnostic_actions(args: argparse.Namespace) -> dict[str, Any]:
    return {rule: getattr(args, option(rule).replace("-", "_")) for rule in RULES}


# --------------------------------------------------------------------------------------------- inputs
def check_serving_code(code_dir: Path) -> None:
    if not (code_dir / "inference.py").is_file():
        raise TrainingInputError(
            f"the serving code folder {code_dir} has no inference.py (the 'serving' channel / --code-dir); "
            "without it model.tar.gz cannot serve itself"
        )


def _drop_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in record.getMessage()


def load_model_and_tokenizer(pretrained_model: str) -> tuple[Any, Any]:
    """Load before any training, turn every loading failure into one clear error, and say in one plain line which
    weights are new (transformers' own report is an ANSI-coloured table, silenced here)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    id2label = {label: str(sentiment) for label, sentiment in features.SENTIMENT_BY_LABEL_ID.items()}
    report_logger = hf_logging.get_logger("transformers.modeling_utils")
    report_logger.addFilter(_drop_load_report)
    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model)
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            pretrained_model,
            num_labels=NUM_LABELS,
            id2label=id2label,
            label2id={name: label for label, name in id2label.items()},
            output_loading_info=True,
        )
    except Exception as error:  # OSError, ValueError, EnvironmentError...: all mean "cannot load it"
        raise TrainingInputError(
            f"cannot load the pretrained model {pretrained_model!r}: {type(error).__name__}: {error}"
        ) from error
    finally:
        report_logger.removeFilter(_drop_load_report)
    if tokenizer.pad_token_id is None:
        raise TrainingInputError(f"the tokenizer of {pretrained_model!r} has no padding token")
    new = sorted(loading.get("missing_keys", ())) + sorted(
        str(key[0]) for key in loading.get("mismatched_keys", ())
    )
    unused = loading.get("unexpected_keys", ())
    logger.info(
        "loaded %s: newly initialized (trained from scratch here): %s; %d checkpoint weight(s) unused",
        pretrained_model,
        ", ".join(new) or "none",
        len(unused),
    )
    return model, tokenizer


# --------------------------------------------------------------------------------------------- checkpoints
def resolve_checkpoint_dir(value: str | None) -> Path | None:
    if value is None:
        default = Path("/opt/ml/checkpoints")
        return default if default.is_dir() else None
    return Path(value) if value else None


def run_settings(args: argparse.Namespace, world_size: int, train_size: int) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed: every hyperparameter, the processes, the data."""
    hyperparameters = {key: value for key, value in vars(args).items() if key not in PATH_ARGUMENTS}
    return {**hyperparameters, "world_size": world_size, "train_size": train_size}


def open_checkpoint_folder(
    args: argparse.Namespace, settings: dict[str, Any], rank: int
) -> tuple[Path, str | None]:
    """Where ``Trainer`` saves each epoch, and the last epoch's checkpoint to resume from (None: start afresh).

    A checkpoint is resumed only under the settings recorded beside it; any other is refused. Without a
    checkpoint folder ``Trainer`` still saves each epoch (to keep the best): a scratch folder that the ranks of one
    torchrun share.
    """
    from transformers.trainer_utils import get_last_checkpoint

    folder = resolve_checkpoint_dir(args.checkpoint_dir)
    if folder is None:
        run = os.environ.get("TORCHELASTIC_RUN_ID", str(os.getpid()))
        return Path(tempfile.gettempdir()) / f"train-checkpoints-{run}", None
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    recorded = folder / SETTINGS_FILE
    before = json.loads(recorded.read_text(encoding="utf-8")) if recorded.is_file() else {}
    if last is not None and before != settings:
        differing = sorted(
            key for key in before.keys() | settings.keys() if before.get(key) != settings.get(key)
        )
        then_and_now = ", ".join(
            f"{key}: {before.get(key)!r} then, {settings.get(key)!r} now" for key in differing
        )
        raise TrainingInputError(
            f"the checkpoint {last} was written by a run with other settings ({then_and_now}): "
            "empty the checkpoint folder to start afresh"
        )
    if rank == 0 and before != settings:
        folder.mkdir(parents=True, exist_ok=True)
        written = folder / f"{SETTINGS_FILE}.tmp"  # then renamed: the other ranks may be reading it
        written.write_text(json.dumps(settings, indent=2), encoding="utf-8")
        written.replace(recorded)
    return folder, last


# --------------------------------------------------------------------------------------------- the Trainer
@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    val_f1_macro: float

    def log_line(self) -> str:
        """The line the pipeline's metric definitions parse: plain decimals, never scientific notation."""
        return (
            f"epoch={self.epoch} train_loss={self.train_loss:.6f} val_loss={self.val_loss:.6f} "
            f"val_acc={self.val_acc:.6f} val_f1_macro={self.val_f1_macro:.6f}"
        )


def epoch_history(log_history: Sequence[dict[str, Any]], steps_per_epoch: int) -> list[EpochResult]:
    """Each epoch's numbers from ``Trainer``'s own record (kept in its checkpoints, so a resumed run has them)."""
    train_losses = {entry["step"]: entry["loss"] for entry in log_history if "loss" in entry}
    return [
        EpochResult(
            epoch=round(entry["step"] / steps_per_epoch),
            train_loss=train_losses.get(entry["step"], math.nan),
            val_loss=entry["eval_loss"],
            val_acc=entry["eval_accuracy"],
            val_f1_macro=entry[f"eval_{SELECTION_METRIC}"],
        )
        for entry in log_history
        if "eval_loss" in entry
    ]


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """``group_by_length``'s sampler, shuffled by ``seed + epoch`` rather than the process's global generator.

    Dropout advances the global generator differently on each rank (their batches differ in length), so from the
    second epoch the ranks would shuffle differently and their shards would overlap; this generator is the same on
    every rank, and a resumed run draws the same batches as an uninterrupted one.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        import torch

        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)


class WeightedLossTrainer(Trainer):
    """``Trainer`` where our recipe differs: the class-weighted loss, the epoch-seeded length grouping, and ties in
    validation macro-F1 going to the lower validation loss (``Trainer`` keeps the first of equal scores)."""

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(self, *args: Any, class_weights: Sequence[float] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.trained_indices: list[int] = []
        """The dataset indices this process trained on since the last evaluation (``EpochLog`` reports them)."""
        self.observations = StepObservations()
        """The last step's loss, gradient norm and batch size, for the diagnostics callback."""

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.observations.loss = loss.detach()
        self.observations.samples = len(inputs["labels"])
        return loss

    def _clip_grad_norm(self, model: Any) -> Any:
        """``Trainer``'s clipping returns the norm before clipping: the one the gradient-norm rule judges."""
        norm = super()._clip_grad_norm(model)
        self.observations.grad_norm = float(norm.item() if hasattr(norm, "item") else norm)
        return norm

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        import torch

        outputs = model(**model_inputs(inputs))
        weight = None
        if self.class_weights is not None:
            weight = torch.tensor(
                self.class_weights, dtype=outputs.logits.dtype, device=outputs.logits.device
            )
        loss = torch.nn.functional.cross_entropy(outputs.logits, inputs["labels"], weight=weight)
        if model.training:
            self.trained_indices.extend(inputs[INDEX_KEY].tolist())
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochSeededLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=[len(item["input_ids"]) for item in dataset],
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
        )

    def _determine_best_metric(self, metrics: dict[str, float], trial: Any) -> bool:
        evaluations = [entry for entry in self.state.log_history if f"eval_{SELECTION_METRIC}" in entry]
        best = max(evaluations, key=lambda entry: (entry[f"eval_{SELECTION_METRIC}"], -entry["eval_loss"]))
        if best["step"] != self.state.global_step:
            return False
        self.state.best_metric = best[f"eval_{SELECTION_METRIC}"]
        self.state.best_global_step = best["step"]
        return True


def compute_metrics(prediction: Any) -> dict[str, float]:
    """Validation accuracy and macro-F1 over the three classes (as the evaluation step computes it)."""
    from sklearn.metrics import accuracy_score, f1_score

    predicted = prediction.predictions.argmax(axis=-1)
    labels = prediction.label_ids
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        SELECTION_METRIC: float(
            f1_score(labels, predicted, labels=list(range(NUM_LABELS)), average="macro", zero_division=0)
        ),
        # The largest class's share of the predictions and of the labels: the class-collapse rule's inputs.
        PREDICTED_TOP_SHARE: top_share([int((predicted == label).sum()) for label in range(NUM_LABELS)])
        or 0.0,
        LABEL_TOP_SHARE: top_share([int((labels == label).sum()) for label in range(NUM_LABELS)]) or 0.0,
    }


class EpochLog(TrainerCallback):
    """After each epoch's validation: the metric line on stdout (rank 0), and which reviews the processes trained
    on (every rank takes part: under DDP the shards are gathered to show that they split the epoch)."""

    def __init__(self, trainer: WeightedLossTrainer, steps_per_epoch: int) -> None:
        self.trainer = trainer
        self.steps_per_epoch = steps_per_epoch

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        epoch = round(state.global_step / self.steps_per_epoch)
        shards = [sorted(set(self.trainer.trained_indices))]
        self.trainer.trained_indices.clear()
        if args.world_size > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * args.world_size
            dist.all_gather_object(gathered, shards[0])
            shards = gathered
        if not state.is_world_process_zero:
            return
        distinct = set().union(*shards)
        logger.info(
            "epoch %d: %d process(es) trained on %d distinct reviews (per process: %s; on more than one: %d)",
            epoch,
            len(shards),
            len(distinct),
            ", ".join(str(len(shard)) for shard in shards),
            sum(len(shard) for shard in shards) - len(distinct),
        )
        print(epoch_history(state.log_history, self.steps_per_epoch)[-1].log_line(), flush=True)


class EpochProgress(ProgressCallback):
    """``Trainer``'s progress bars, the training bar headed ``epoch 2/3``, without ``ProgressCallback`` printing
    every log dictionary to stdout (the metric line is ``EpochLog``'s)."""

    def __init__(self, steps_per_epoch: int, epochs: int) -> None:
        super().__init__()
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.training_bar is not None:
            epoch = min(state.global_step // self.steps_per_epoch + 1, self.epochs)
            self.training_bar.set_description(f"epoch {epoch}/{self.epochs}", refresh=False)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        return None


def steps_per_epoch(args: argparse.Namespace, train_size: int, world_size: int) -> tuple[int, bool]:
    """Optimizer steps in an epoch (each process takes every world_size-th batch), and whether the cap cut it."""
    whole = math.ceil(train_size / (args.train_batch_size * world_size))
    capped = 0 < args.train_steps_per_epoch < whole
    return (args.train_steps_per_epoch if capped else whole), capped


def build_trainer(
    args: argparse.Namespace,
    model: Any,
    tokenizer: Any,
    train_split: Split,
    validation_split: Split,
    output_dir: Path,
    world_size: int = 1,
) -> WeightedLossTrainer:
    """The ``Trainer`` of this recipe, before any step: the benchmark drives the same one step by step."""
    import torch
    from torch.utils.data import Subset
    from transformers import PrinterCallback

    per_epoch, capped = steps_per_epoch(args, len(train_split), world_size)
    # A capped epoch is a block of steps: validate, save and log the train loss after each.
    strategy = "steps" if capped else "epoch"
    is_main = int(os.environ.get("RANK", "0")) == 0
    training_args = TrainingArguments(
        output_dir=str(output_dir),
        seed=args.seed,
        data_seed=args.seed,
        num_train_epochs=args.epochs,
        max_steps=per_epoch * args.epochs if capped else -1,
        per_device_train_batch_size=args.train_batch_size,
        per_device_eval_batch_size=args.validation_batch_size,
        learning_rate=args.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=args.warmup_ratio,  # a float in [0, 1) is a share of the steps
        weight_decay=args.weight_decay,
        max_grad_norm=1.0,
        train_sampling_strategy="group_by_length" if args.group_by_length else "random",
        eval_strategy=strategy,
        save_strategy=strategy,
        logging_strategy=strategy,
        eval_steps=per_epoch,
        save_steps=per_epoch,
        logging_steps=per_epoch,
        save_total_limit=2,  # the last epoch (to resume) and the best (to keep)
        load_best_model_at_end=True,
        metric_for_best_model=SELECTION_METRIC,
        greater_is_better=True,
        remove_unused_columns=False,  # the batches carry the reviews' indices for the shard report
        report_to="none",
        disable_tqdm=not is_main,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
    )
    validation = SplitDataset(validation_split)
    if args.validation_steps_per_epoch:
        cap = args.validation_steps_per_epoch * args.validation_batch_size
        validation = Subset(validation, range(min(cap, len(validation_split))))
    trainer = WeightedLossTrainer(
        model=model,
        args=training_args,
        data_collator=make_collator(tokenizer, args.max_seq_length, args.pad_to_max_length),
        train_dataset=SplitDataset(train_split),
        eval_dataset=validation,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        class_weights=class_weights(train_split.labels) if args.class_weighted_loss else None,
    )
    for default in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(default)
    if is_main:
        trainer.add_callback(EpochProgress(per_epoch, args.epochs))
    return trainer


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


def plot_training_curves(history: Sequence[EpochResult], best_epoch: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [result.epoch for result in history]
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [r.train_loss for r in history], marker="o", label="train")
    loss_axis.plot(epochs, [r.val_loss for r in history], marker="o", label="validation")
    loss_axis.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    loss_axis.legend()
    score_axis.plot(epochs, [r.val_f1_macro for r in history], marker="o", label="macro-F1")
    score_axis.plot(epochs, [r.val_acc for r in history], marker="o", label="accuracy")
    score_axis.axvline(best_epoch, color="grey", linestyle="--", label=f"kept: epoch {best_epoch}")
    score_axis.set(title="Validation", xlabel="epoch", ylim=(0, 1))
    score_axis.legend()
    for axis in (loss_axis, score_axis):
        axis.set_xticks(epochs)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_outputs(
    args: argparse.Namespace,
    model: Any,
    tokenizer: Any,
    history: Sequence[EpochResult],
    best_epoch: int,
    weights: Sequence[float] | None,
    diagnostics: dict[str, Any] | None = None,
    tracker: tracking.Tracker | None = None,
) -> None:
    args.model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.model_dir)
    tokenizer.model_max_length = args.max_seq_length  # serving truncates the way training did
    tokenizer.save_pretrained(args.model_dir)
    copied = copy_serving_code(args.code_dir, args.model_dir)
    best = next(result for result in history if result.epoch == best_epoch)
    logger.info(
        "saved the model of epoch %d (val_f1_macro %.4f, val_acc %.4f) to %s, serving code: %s",
        best.epoch,
        best.val_f1_macro,
        best.val_acc,
        args.model_dir,
        ", ".join(path.name for path in copied),
    )

    args.output_data_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "best_epoch": best.epoch,
        "best_val_f1_macro": best.val_f1_macro,
        "best_val_acc": best.val_acc,
        "best_val_loss": best.val_loss,
        "class_weights": None
        if weights is None
        else {
            features.SENTIMENT_NAMES[features.SENTIMENT_BY_LABEL_ID[label]]: weight
            for label, weight in enumerate(weights)
        },
        "epochs": [asdict(result) for result in history],
        "hyperparameters": {key: value for key, value in vars(args).items() if key not in PATH_ARGUMENTS},
        "paths": {key: str(value) for key, value in vars(args).items() if key in PATH_ARGUMENTS},
        REPORT_KEY: diagnostics or {},
    }
    (args.output_data_dir / METRICS_FILE).write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot_training_curves(history, best.epoch, args.output_data_dir / CURVES_FILE)
    if tracker is not None:
        tracking.log_training_report(tracker, report, args.output_data_dir)
    # Last: the tuning objective (pipeline_spec.TUNING_OBJECTIVE); SageMaker's tuner reads a job's latest value.
    print(f"best_validation_f1_macro={best.val_f1_macro:.6f}", flush=True)


def finish_distributed() -> None:
    """Every rank waits here for rank 0 to write the model, then leaves the process group. On gloo the barrier is
    monitored: a rank that never arrives fails the job after END_BARRIER_TIMEOUT, naming the rank, never hangs."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        dist.monitored_barrier(timeout=END_BARRIER_TIMEOUT)
    else:
        dist.barrier()
    dist.destroy_process_group()


def fail(message: str) -> int:
    """Report a bad input: on stderr, and in SageMaker's failure file (shown as the job's FailureReason)."""
    logger.error("%s", message)
    output_dir = os.environ.get("SM_OUTPUT_DIR")
    if output_dir and Path(output_dir).is_dir():
        (Path(output_dir) / "failure").write_text(message[:1000], encoding="utf-8")
    return 2


# --------------------------------------------------------------------------------------------- main
def train(args: argparse.Namespace) -> list[EpochResult]:
    from transformers import set_seed

    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))

    # Data and model: every check on the inputs happens before the first step.
    check_serving_code(args.code_dir)
    train_split = read_split(args.train_data, "train", args.max_seq_length)
    validation_split = read_split(args.validation_data, "validation", args.max_seq_length)
    set_seed(args.seed)  # before the model: its new classifier head is drawn from the global generator
    model, tokenizer = load_model_and_tokenizer(args.pretrained_model)
    check_token_ids((train_split, validation_split), model.config.vocab_size, args.pretrained_model)
    if args.freeze_bert_layer:
        for parameter in model.base_model.parameters():
            parameter.requires_grad = False
    folder, resume = open_checkpoint_folder(args, run_settings(args, world_size, len(train_split)), rank)

    # The execution's MLflow run (a child run in a tuning trial); rank 0 logs for the job.
    tracker = tracking.from_environment() if rank == 0 else tracking.Tracker(reason=f"rank {rank}")
    diagnostics = Diagnostics(diagnostic_actions(args))
    try:
        # Train: validate and checkpoint after every epoch; the best epoch's weights are loaded at the end.
        trainer = build_trainer(args, model, tokenizer, train_split, validation_split, folder, world_size)
        per_epoch, _ = steps_per_epoch(args, len(train_split), world_size)
        trainer.add_callback(EpochLog(trainer, per_epoch))
        watch = DiagnosticsCallback(diagnostics, trainer.observations, tracker)
        trainer.add_callback(watch)
        if rank == 0:
            logger.info("class weights of the loss: %s", describe_weights(trainer.class_weights))
        if resume:
            logger.info("resuming from %s after epoch %d", resume, int(resume.rsplit("-", 1)[1]) // per_epoch)
        trainer.train(resume_from_checkpoint=resume)
        if watch.stopped is not None:  # every rank: they agreed to stop (the callback's all-reduce)
            tracking.log_diagnostics(tracker, diagnostics.summary())
            if os.environ.get(tracking.TRIAL_VARIABLE):
                tracker.end("FAILED")
            raise TrainingStopped(watch.stopped)

        # Save: rank 0 writes the model folder, the metrics and the curves; the others wait for it.
        history = epoch_history(trainer.state.log_history, per_epoch)
        best_epoch = round((trainer.state.best_global_step or 0) / per_epoch)
        if trainer.is_world_process_zero():
            save_outputs(
                args,
                trainer.model,
                tokenizer,
                history,
                best_epoch,
                trainer.class_weights,
                diagnostics.summary(),
                tracker,
            )
            if os.environ.get(tracking.TRIAL_VARIABLE):
                tracker.end()  # a trial's child run ends with its job; the execution's run with the execution
        finish_distributed()
    finally:
        if rank == 0 and resolve_checkpoint_dir(args.checkpoint_dir) is None:
            shutil.rmtree(folder, ignore_errors=True)  # the scratch folder
    return history


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
    except (TrainingInputError, TrainingStopped) as error:
        return fail(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
