"""End to end on this machine: processing -> training -> evaluation -> the handler of the packed model.

Each script runs as a subprocess under its container contract (arguments from ``pipeline_spec``, channels and
output folders the way SageMaker lays them out), and the model the handler serves comes out of the same
``model.tar.gz`` the evaluation scored. Two models: the tiny RoBERTa (the ``roberta-base`` code path, a few
epochs) and the bundled MiniLM (what the local mode fine-tunes: one epoch, a few steps).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest

from model_build.pipeline_spec import (
    ACCURACY_JSON_PATH,
    CHECK_DATA,
    EVALUATE,
    EVALUATION_FILE,
    PIPELINE,
    PROCESS,
    STEPS_SOURCE_DIR,
    TRAIN,
    Param,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_DIR = REPO_ROOT / STEPS_SOURCE_DIR


def resolve(value: Any, parameters: dict[str, Any]) -> str:
    return str(parameters[value.name] if isinstance(value, Param) else value)


def run(script: str, arguments: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, script, *arguments],
        cwd=STEPS_DIR,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stderr[-4000:]}"
    return result


def processing_arguments(step_name: str, root: Path, parameters: dict[str, Any]) -> list[str]:
    """The step's arguments from the spec, with ``/opt/ml/processing`` mapped into ``root``."""
    arguments = []
    for name, value in PIPELINE.step(step_name).arguments.items():
        text = resolve(value, parameters).replace("/opt/ml/processing", str(root))
        if name == "--feature-group-name":
            text = ""  # no Feature Store here: the records stay in the features/ output
        if name == "--exit-message":
            text = str(root / "message")  # SageMaker's /opt/ml/output/message, kept in the test's folder
        arguments += [name, text]
    return arguments


def load_packed_handler(archive: Path, folder: Path) -> tuple[ModuleType, Any]:
    """What the serving container does: extract model.tar.gz, import code/inference.py, call model_fn."""
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    spec = importlib.util.spec_from_file_location(
        f"inference_{folder.name}", folder / "code" / "inference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module, module.model_fn(str(folder))


def run_pipeline_steps(root: Path, sample_csv: Path, pretrained: Path, **overrides: Any) -> dict[str, Any]:
    parameters = {**PIPELINE.defaults(local=True), "PretrainedModel": str(pretrained), **overrides}
    processing = root / "processing"
    (processing / "input" / "data").mkdir(parents=True)
    shutil.copy(sample_csv, processing / "input" / "data")
    # The data check first: evaluation weighs the monitoring baseline by the label shares it reports.
    run("check_data.py", processing_arguments(CHECK_DATA, processing, parameters))
    run("preprocess.py", processing_arguments(PROCESS, processing, parameters))

    # Training: the channels as the spec wires them (processing outputs, the serving code), SM_CHANNEL_<NAME> each.
    training = root / "training"
    outputs = processing / "output"
    step = PIPELINE.step(TRAIN)
    channels = {
        name: REPO_ROOT / source if isinstance(source, str) else outputs / source.output
        for name, source in step.channels.items()
    }
    env = {
        **{f"SM_CHANNEL_{name.upper()}": str(folder) for name, folder in channels.items()},
        "SM_MODEL_DIR": str(training / "model"),
        "SM_OUTPUT_DATA_DIR": str(training / "output" / "data"),
    }
    hyperparameters = [
        item
        for name, value in step.hyperparameters.items()
        for item in (f"--{name}", resolve(value, parameters))
    ]
    trained = run("train.py", hyperparameters, env)
    metrics = {
        name: [float(value) for value in re.findall(regex, trained.stdout)]
        for name, regex in step.metric_definitions
    }

    # SageMaker packs SM_MODEL_DIR into model.tar.gz; the evaluation gets it as its "model" input.
    archive = processing / "input" / "model" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((training / "model").iterdir()):
            tar.add(path, arcname=path.name)
    # The evaluation's other inputs, staged where the spec says (the test split, the train split for baselines).
    for item in PIPELINE.step(EVALUATE).inputs:
        if item.name != "model":
            destination = Path(item.destination.replace("/opt/ml/processing", str(processing)))
            shutil.copytree(outputs / item.source.output, destination)
    run("evaluate.py", processing_arguments(EVALUATE, processing, parameters))
    report = json.loads((outputs / "evaluation" / EVALUATION_FILE).read_text())

    handler, model = load_packed_handler(archive, root / "served")
    test = pq.read_table(outputs / "test").to_pydict()
    return {"metrics": metrics, "report": report, "handler": handler, "model": model, "test": test}


def accuracy_of(report: dict[str, Any]) -> float:
    value: Any = report
    for key in ACCURACY_JSON_PATH.split("."):
        value = value[key]
    return value


def test_tiny_roberta_through_every_step(tmp_path: Path, sample_csv: Path, tiny_roberta_dir: Path) -> None:
    run = run_pipeline_steps(tmp_path, sample_csv, tiny_roberta_dir, Epochs=3, LearningRate=0.001)
    losses = run["metrics"]["train:loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert len(run["metrics"]["validation:accuracy"]) == 3

    report, test = run["report"], run["test"]
    assert report["metrics"]["examples"] == len(test["review_id"]) > 0
    # The handler, fed the test reviews' text, agrees with the evaluation that scored their token ids.
    handler, model = run["handler"], run["model"]
    body = json.dumps({"features": test["review_body"]})
    predictions = json.loads(
        handler.output_fn(
            handler.predict_fn(handler.input_fn(body, "application/json"), model), "application/json"
        )[0]
    )
    correct = sum(p["predicted_label"] == s for p, s in zip(predictions, test["sentiment"], strict=True))
    assert correct / len(predictions) == pytest.approx(accuracy_of(report))


def test_bundled_minilm_one_short_epoch(tmp_path: Path, sample_csv: Path, minilm_dir: Path) -> None:
    run = run_pipeline_steps(
        tmp_path,
        sample_csv,
        minilm_dir,
        Epochs=1,
        TrainBatchSize=8,
        TrainStepsPerEpoch=3,
        ValidationBatchSize=16,
    )
    assert [len(values) for values in run["metrics"].values()] == [1, 1, 1, 1, 1]
    assert 0 <= accuracy_of(run["report"]) <= 1
    handler, model = run["handler"], run["model"]
    lines, content_type = handler.output_fn(
        handler.predict_fn(
            handler.input_fn("Love it, fits perfectly.\nIt ripped after one wash.\n", "text/csv"), model
        ),
        "application/jsonlines",
    )
    assert content_type == "application/jsonlines"
    assert [
        json.loads(line)["sentiment"] in ("negative", "neutral", "positive") for line in lines.splitlines()
    ] == [True, True]
