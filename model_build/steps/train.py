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
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import features
import tracking
from arguments import non_negative_int, positive_int, str_to_bool
from diagnostics import ACTIONS, REPORT_KEY, RULES, Diagnostics, TrainingStopped, option
from diagnostics_callback import DiagnosticsCallback
from trainer_setup import (
    EpochLog,
    EpochResult,
    build_trainer,
    epoch_history,
    steps_per_epoch,
)
from training_data import (
    NUM_LABELS,
    TrainingInputError,
    check_token_ids,
    describe_weights,
    read_split,
)

logger = logging.getLogger("train")

SERVING_FILES = ("*.py", "requirements.txt")
SETTINGS_FILE = "run_settings.json"
METRICS_FILE = tracking.TRAINING_REPORT_FILE
CURVES_FILE = "training_curves.png"
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
