"""The training step under its SageMaker contract: channels and model dir from ``SM_*``, hyperparameters as
``--name value``, metric lines the pipeline's regexes parse, a model folder that serves itself."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import diagnostics
import features
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tracking
import train
import trainer_setup
import training_data

from model_build.pipeline_spec import (
    PIPELINE,
    SERVING_SOURCE_DIR,
    STEPS_SOURCE_DIR,
    TRAIN,
    TUNING_OBJECTIVE,
)
from tests.model_build.review_splits import write_splits

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS_DIR = REPO_ROOT / STEPS_SOURCE_DIR
SERVING_DIR = REPO_ROOT / SERVING_SOURCE_DIR
METRIC_DEFINITIONS = dict(PIPELINE.step(TRAIN).metric_definitions)


@pytest.fixture(scope="module")
def splits(
    tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, tiny_roberta_dir: Path
) -> dict[str, Path]:
    return write_splits(tmp_path_factory.mktemp("splits"), sample_csv, tiny_roberta_dir)


def container_env(tmp_path: Path, splits: dict[str, Path]) -> dict[str, str]:
    """The variables SageMaker sets in a training container (minus the ones this script does not read)."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SM_CHANNEL_TRAIN": str(splits["train"]),
        "SM_CHANNEL_VALIDATION": str(splits["validation"]),
        "SM_CHANNEL_SERVING": str(SERVING_DIR),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
        "SM_OUTPUT_DIR": str(tmp_path / "output"),
    }


def hyperparameters(pretrained_model: Path, **overrides: object) -> list[str]:
    """``--name value`` for every hyperparameter the pipeline passes, with test-sized values."""
    values: dict[str, object] = {
        "pretrained-model": pretrained_model,
        "epochs": 3,
        "learning-rate": 0.001,
        "train-batch-size": 32,
        "validation-batch-size": 64,
        "train-steps-per-epoch": 0,
        "validation-steps-per-epoch": 0,
        "max-seq-length": 128,
        "freeze-bert-layer": "False",
        "warmup-ratio": 0.1,
        "class-weighted-loss": "true",
        "seed": 42,
        **{diagnostics.option(rule): "warn" for rule in diagnostics.RULES},
        **overrides,
    }
    assert set(PIPELINE.step(TRAIN).hyperparameters) <= set(values), "a pipeline hyperparameter is not tested"
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def run_script(
    args: list[str], env: dict[str, str], launcher: list[str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run train.py in its own process group: on timeout the whole group goes (torchrun and every worker it
    started), so no orphan keeps the pipes open and the test fails instead of hanging."""
    command = [*(launcher or [sys.executable]), "train.py", *args]
    with subprocess.Popen(
        command,
        cwd=STEPS_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"train.py ran past {timeout} s and was killed with its workers:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def parse_metrics(stdout: str) -> dict[str, list[float]]:
    """What SageMaker would extract with the pipeline's metric definitions."""
    return {
        name: [float(value) for value in re.findall(regex, stdout)]
        for name, regex in METRIC_DEFINITIONS.items()
    }


def test_trains_under_the_container_contract(
    tmp_path: Path, splits: dict[str, Path], tiny_roberta_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = container_env(tmp_path, splits)
    checkpoints = tmp_path / "checkpoints"
    result = run_script([*hyperparameters(tiny_roberta_dir), "--checkpoint-dir", str(checkpoints)], env)
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = parse_metrics(result.stdout)
    # One value per epoch, and the kept epoch's macro-F1 once, last (the tuning objective).
    assert {name: len(values) for name, values in metrics.items()} == {
        **dict.fromkeys(METRIC_DEFINITIONS, 3),
        TUNING_OBJECTIVE: 1,
    }
    assert result.stdout.rstrip().splitlines()[-1].startswith("best_validation_f1_macro=")
    losses = metrics["train:loss"]
    assert losses[-1] < losses[0], f"the training loss did not fall: {losses}"
    assert all(0 <= accuracy <= 1 for accuracy in metrics["validation:accuracy"])

    model_dir = tmp_path / "model"
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "code/inference.py"):
        assert (model_dir / name).is_file(), f"{name} is missing from the model folder"
    assert (model_dir / "code" / "requirements.txt").read_text() == (
        SERVING_DIR / "requirements.txt"
    ).read_text()
    config = json.loads((model_dir / "config.json").read_text())
    assert {
        int(index): int(label) for index, label in config["id2label"].items()
    } == features.SENTIMENT_BY_LABEL_ID
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 128

    output = tmp_path / "output" / "data"
    assert (output / train.CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((output / train.METRICS_FILE).read_text())
    accuracies = [epoch["val_acc"] for epoch in report["epochs"]]
    assert accuracies == pytest.approx(metrics["validation:accuracy"], abs=1e-6)
    assert [epoch["val_f1_macro"] for epoch in report["epochs"]] == pytest.approx(
        metrics["validation:f1_macro"], abs=1e-6
    )
    # The best epoch: highest validation macro-F1, ties broken by the lower validation loss.
    best = max(report["epochs"], key=lambda epoch: (epoch["val_f1_macro"], -epoch["val_loss"]))
    assert report["best_epoch"] == best["epoch"]
    assert report["best_val_f1_macro"] == best["val_f1_macro"]
    assert metrics[TUNING_OBJECTIVE] == pytest.approx([best["val_f1_macro"]], abs=1e-6)
    # Trainer's checkpoints: the last epoch (to resume) and the best (if another), beside the run's settings.
    saved = {path.name for path in checkpoints.iterdir()}
    assert train.SETTINGS_FILE in saved
    assert 1 <= len(saved - {train.SETTINGS_FILE}) <= 2 and all(
        name.startswith("checkpoint-") for name in saved - {train.SETTINGS_FILE}
    )

    # A restarted job (same settings, same checkpoint folder) resumes: nothing is left to train, the best epoch
    # is saved again.
    (model_dir / "config.json").unlink()
    resumed = run_script([*hyperparameters(tiny_roberta_dir), "--checkpoint-dir", str(checkpoints)], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    assert parse_metrics(resumed.stdout)["train:loss"] == []
    assert (model_dir / "config.json").is_file()

    # Other settings with the same checkpoints are refused, not mixed in.
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    other_seed = [*hyperparameters(tiny_roberta_dir, seed=7), "--checkpoint-dir", str(checkpoints)]
    for variable in ("train", "validation"):
        other_seed += [f"--{variable}-data", env[f"SM_CHANNEL_{variable.upper()}"]]
    other_seed += ["--code-dir", str(SERVING_DIR), "--model-dir", str(tmp_path / "other-model")]
    assert train.main(other_seed) != 0
    assert "other settings" in (tmp_path / "output" / "failure").read_text()
    assert not (tmp_path / "other-model").exists()


def test_identical_runs_give_identical_weights_and_metrics(
    tmp_path: Path, splits: dict[str, Path], tiny_roberta_dir: Path
) -> None:
    """Same splits, hyperparameters and seed -> the same model, bit for bit, on CPU: a gate decision is not luck."""
    outcomes = []
    for attempt in ("first", "second"):
        env = container_env(tmp_path / attempt, splits)
        steps = {"epochs": 2, "train-steps-per-epoch": 4, "validation-steps-per-epoch": 2}
        result = run_script(hyperparameters(tiny_roberta_dir, **steps), env)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads((tmp_path / attempt / "output" / "data" / train.METRICS_FILE).read_text())
        epochs = [{k: v for k, v in epoch.items() if "second" not in k} for epoch in report["epochs"]]
        weights = (tmp_path / attempt / "model" / "model.safetensors").read_bytes()
        outcomes.append((parse_metrics(result.stdout), epochs, weights))
    (first_lines, first_epochs, first_weights), (second_lines, second_epochs, second_weights) = outcomes
    assert first_lines == second_lines
    assert first_epochs == second_epochs
    assert first_weights == second_weights, "the same run gave other weights"


def test_two_processes_train_data_parallel(
    tmp_path: Path, splits: dict[str, Path], tiny_roberta_dir: Path
) -> None:
    """torchrun with 2 CPU processes (gloo): shards that split each epoch, one set of metric lines, one writer."""
    env = {**container_env(tmp_path, splits), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    batch_size = 32
    result = run_script(
        hyperparameters(tiny_roberta_dir, epochs=2, **{"train-batch-size": batch_size}), env, launcher
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # Rank 0 gathers the reviews each process trained on, after every epoch.
    shards = re.findall(
        r"rank0 INFO train: epoch (\d): 2 process\(es\) trained on (\d+) distinct reviews "
        r"\(per process: (\d+), (\d+); on more than one: (\d+)\)",
        result.stderr,
    )
    train_size = pq.read_table(splits["train"]).num_rows
    assert [epoch for epoch, *_ in shards] == ["1", "2"], result.stderr[-3000:]
    for epoch, distinct, first, second, shared in shards:
        assert int(distinct) == train_size, f"epoch {epoch}: not every review was trained on"
        # Each process trains on its half; accelerate evens the shards out (every process runs the same number
        # of full batches) with reviews from the start of the epoch: fewer than two batches' worth.
        assert max(int(first), int(second)) <= train_size // 2 + batch_size, (
            f"epoch {epoch}: {first}, {second}"
        )
        assert int(shared) < 2 * batch_size, f"epoch {epoch}: the shards overlap by {shared} reviews"

    losses = parse_metrics(result.stdout)["train:loss"]
    assert len(losses) == 2, "only rank 0 prints the metric lines"
    assert losses[1] < losses[0]
    saves = re.findall(r"rank(\d) INFO train: saved the model", result.stderr)
    assert saves == ["0"]
    assert (tmp_path / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "problem",
    [
        "missing channel",
        "empty channel",
        "no rows",
        "label out of range",
        "sentiment mismatch",
        "bad model",
        "no code",
    ],
)
def test_bad_input_fails_before_training(
    problem: str,
    tmp_path: Path,
    splits: dict[str, Path],
    tiny_roberta_dir: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = container_env(tmp_path, splits)
    (tmp_path / "output").mkdir()
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    args = {
        "--pretrained-model": str(tiny_roberta_dir),
        "--train-data": env["SM_CHANNEL_TRAIN"],
        "--validation-data": env["SM_CHANNEL_VALIDATION"],
        "--code-dir": env["SM_CHANNEL_SERVING"],
        "--model-dir": env["SM_MODEL_DIR"],
        "--output-data-dir": env["SM_OUTPUT_DATA_DIR"],
        "--checkpoint-dir": "",
    }
    bad = tmp_path / "bad"
    bad.mkdir()
    table = pq.read_table(next(splits["train"].glob("*.parquet")))
    expected: str
    if problem == "missing channel":
        args["--train-data"], expected = str(tmp_path / "nowhere"), "does not exist"
    elif problem == "empty channel":
        args["--validation-data"], expected = str(bad), "has no *.parquet files"
    elif problem == "no rows":
        pq.write_table(table.slice(0, 0), bad / "part.parquet")
        args["--validation-data"], expected = str(bad), "has no rows"
    elif problem == "label out of range":
        labels = table.column("label_id").to_pylist()
        labels[5] = 3
        pq.write_table(
            table.set_column(table.column_names.index("label_id"), "label_id", pa.array(labels)),
            bad / "p.parquet",
        )
        args["--train-data"], expected = str(bad), "row 5"
    elif problem == "sentiment mismatch":
        sentiments = table.column("sentiment").to_pylist()
        sentiments[2] = -sentiments[2] if sentiments[2] else 1
        column = table.column_names.index("sentiment")
        pq.write_table(table.set_column(column, "sentiment", pa.array(sentiments)), bad / "p.parquet")
        args["--train-data"], expected = str(bad), "row 2"
    elif problem == "bad model":
        args["--pretrained-model"], expected = str(tmp_path / "no-model"), "cannot load the pretrained model"
    else:
        args["--code-dir"], expected = str(bad), "has no inference.py"

    assert train.main([item for pair in args.items() for item in pair]) != 0
    captured = capsys.readouterr()
    assert "epoch=" not in captured.out, "training started despite the bad input"
    assert not Path(env["SM_MODEL_DIR"]).exists()
    assert expected in (tmp_path / "output" / "failure").read_text()


def test_bad_input_exits_non_zero_with_the_reason(
    tmp_path: Path, splits: dict[str, Path], tiny_roberta_dir: Path
) -> None:
    env = {**container_env(tmp_path, splits), "SM_CHANNEL_TRAIN": str(tmp_path / "missing")}
    (tmp_path / "output").mkdir()
    result = run_script(hyperparameters(tiny_roberta_dir), env)
    assert result.returncode != 0
    assert f"the train data folder {tmp_path / 'missing'} does not exist" in result.stderr
    assert "does not exist" in (tmp_path / "output" / "failure").read_text()


def test_dynamic_padding_pads_each_batch_to_its_longest_row(tiny_roberta_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_roberta_dir)
    items = [
        {"input_ids": [0, 5, 6, 2], "labels": 1, training_data.INDEX_KEY: 3},
        {"input_ids": [0, 7, 2], "labels": 0, training_data.INDEX_KEY: 9},
    ]
    batch = training_data.make_collator(tokenizer, 128)(items)
    assert batch[training_data.INDEX_KEY].tolist() == [3, 9]
    assert batch["input_ids"].tolist() == [[0, 5, 6, 2], [0, 7, 2, tokenizer.pad_token_id]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]
    assert set(training_data.model_inputs(batch)) == {"input_ids", "attention_mask"}
    fixed = training_data.make_collator(tokenizer, 128, pad_to_max_length=True)(items)
    assert fixed["input_ids"].shape == (2, 128)


def test_metric_line_is_plain_decimals_the_regexes_parse() -> None:
    line = trainer_setup.EpochResult(2, 1.5e-7, 12.25, 1.0, 0.5).log_line()
    assert "e-" not in line
    assert parse_metrics(line) == {
        "train:loss": [0.0],
        "validation:loss": [12.25],
        "validation:accuracy": [1.0],
        "validation:f1_macro": [0.5],
        TUNING_OBJECTIVE: [],
    }


def test_hyperparameters_as_sagemaker_passes_them() -> None:
    args = train.parse_args(
        ["--freeze_bert_layer", "True", "--train-batch-size", "8", "--sagemaker_program", "train.py"]
    )
    assert args.freeze_bert_layer is True
    assert args.train_batch_size == 8
    assert train.parse_args(["--freeze-bert-layer", "0"]).freeze_bert_layer is False
    with pytest.raises(SystemExit) as refused:
        train.parse_args(["--freeze-bert-layer", "maybe"])
    assert refused.value.code == 2


def test_logs_each_epoch_and_the_diagnostics_into_the_execution_run(
    tmp_path: Path, splits: dict[str, Path], tiny_roberta_dir: Path
) -> None:
    """What the job logs into its execution's MLflow run (a SQLite store, as the local runner's), read back
    through MLflow's client: the hyperparameters, each epoch's numbers at step = epoch, every rule's verdict,
    the throughput profile, the report and the curves."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tracking.start_pipeline_run(
        uri, "tests", "execution-1", {"Epochs": 2}, {}, artifact_location=(tmp_path / "artifacts").as_uri()
    )
    assert run.active, run.reason
    env = {
        **container_env(tmp_path, splits),
        tracking.TRACKING_URI_VARIABLE: uri,
        tracking.RUN_ID_VARIABLE: run.run_id,
    }
    small = {"epochs": 2, "train-steps-per-epoch": 2, "validation-steps-per-epoch": 1}
    result = run_script(hyperparameters(tiny_roberta_dir, **small), env)
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(uri)
    logged = client.get_run(run.run_id).data
    assert logged.params["Epochs"] == "2" and logged.params["train.learning_rate"] == "0.001"
    for name in ("train_loss", "val_loss", "val_accuracy", "val_f1_macro"):
        assert [m.step for m in client.get_metric_history(run.run_id, name)] == [1, 2], name
    val_losses = [m.value for m in client.get_metric_history(run.run_id, "val_loss")]
    assert val_losses == [
        e["val_loss"]
        for e in json.loads((tmp_path / "output/data/training_metrics.json").read_text())["epochs"]
    ]
    assert {f"diagnostic.{rule}" for rule in diagnostics.RULES} <= set(logged.tags)
    assert logged.metrics["profile.samples_per_second"] > 0 and logged.metrics["best_epoch"] in (1, 2)
    files = {item.path for item in client.list_artifacts(run.run_id, tracking.TRAINING_ARTIFACTS)}
    assert files == {"training/training_metrics.json", "training/training_curves.png"}


def test_an_unreachable_tracking_server_is_a_warning_and_training_goes_on(
    tmp_path: Path, splits: dict[str, Path], tiny_roberta_dir: Path
) -> None:
    env = {
        **container_env(tmp_path, splits),
        tracking.TRACKING_URI_VARIABLE: "http://127.0.0.1:9",  # nothing listens on the discard port
        tracking.RUN_ID_VARIABLE: "0123456789abcdef",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    }
    small = {"epochs": 1, "train-steps-per-epoch": 1, "validation-steps-per-epoch": 1}
    result = run_script(hyperparameters(tiny_roberta_dir, **small), env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MLflow tracking is off for the rest of this job" in result.stderr
    assert (tmp_path / "model" / "config.json").is_file()
