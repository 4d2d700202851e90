"""The Hugging Face Trainer as training uses it: class weights in the loss, length-grouped batches seeded per
epoch, macro-F1 per epoch, the epoch log lines SageMaker's metric regexes read, and the per-epoch history.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics import top_share
from diagnostics_callback import LABEL_TOP_SHARE, PREDICTED_TOP_SHARE, StepObservations
from training_data import (
    INDEX_KEY,
    NUM_LABELS,
    Split,
    SplitDataset,
    class_weights,
    make_collator,
    model_inputs,
)
from transformers import ProgressCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

logger = logging.getLogger("train")

SELECTION_METRIC = "f1_macro"
"""Validation macro-F1 picks the best epoch (``validation:f1_macro``, the tuning objective, is the same number)."""


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
