"""The int8 ONNX variant: exported and checked by the evaluation step, packaged only when it answers like PyTorch,
and served by the handler with ONNX Runtime (PyTorch otherwise)."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path
from types import ModuleType

import evaluate
import onnx_int8
import pytest

from model_build.pipeline_spec import (
    EVALUATE,
    MODEL_ARCHIVE,
    PACKAGE_OUTPUT,
    PIPELINE,
    REGISTER,
)
from model_deploy.stage_config import ServingSettings
from tests.model_build.review_splits import labelled_model, write_splits
from tests.model_deploy.test_inference import load_handler

REVIEWS = [
    "Love this dress, the fit is perfect and the color is lovely.",
    "Returned it: the fabric is thin and the seams came apart after one wash.",
    "It is fine.",
    "ok " * 400,
]


@pytest.fixture(scope="module")
def handler() -> ModuleType:
    return load_handler()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    return labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def test_split(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, tiny_roberta_dir: Path) -> Path:
    return write_splits(tmp_path_factory.mktemp("splits"), sample_csv, tiny_roberta_dir)["test"]


def run_evaluation(model_dir: Path, test_split: Path, folder: Path, *rule: str) -> dict:
    arguments = [
        "--model-path", str(model_dir), "--test-data", str(test_split),
        "--output-data", str(folder / "evaluation"), "--package-output", str(folder / "package"), *rule,
    ]  # fmt: skip
    assert evaluate.main(arguments) == 0
    return json.loads((folder / "evaluation" / evaluate.EVALUATION_FILE).read_text())


def unpack(archive: Path, folder: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


@pytest.fixture(scope="module")
def packaged(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, test_split: Path
) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("packaged")
    report = run_evaluation(model_dir, test_split, folder)
    return report, unpack(folder / "package" / MODEL_ARCHIVE, folder / "unpacked")


def test_the_package_carries_the_int8_model_when_it_answers_like_pytorch(
    packaged: tuple[dict, Path], model_dir: Path, test_split: Path
) -> None:
    report, unpacked = packaged
    entry = report[evaluate.ONNX_INT8_JSON_KEY]
    parity = entry["parity"]
    assert entry["packaged"] is True, entry["message"]
    assert parity["holds"] is True and parity["failures"] == []
    assert parity["examples"] == report["metrics"]["examples"]
    assert parity["label_agreement"]["value"] >= onnx_int8.ParityRule().min_label_agreement
    assert (
        0 < parity["max_probability_difference"]["value"] <= onnx_int8.ParityRule().max_probability_difference
    )
    # Every file of the trained model is in the package, and the int8 model beside them.
    trained = {path.relative_to(model_dir).as_posix() for path in model_dir.rglob("*") if path.is_file()}
    files = {path.relative_to(unpacked).as_posix() for path in unpacked.rglob("*") if path.is_file()}
    assert files == trained | {onnx_int8.INT8_MODEL_FILE}


def test_the_handler_serves_the_int8_model_with_onnx_runtime(
    handler: ModuleType, packaged: tuple[dict, Path]
) -> None:
    _, unpacked = packaged
    assert handler.ONNX_MODEL_FILE == onnx_int8.INT8_MODEL_FILE
    served = handler.load_model(str(unpacked), "auto")  # no GPU here: auto takes the int8 model
    reference = handler.load_model(str(unpacked), "pytorch")
    assert (served.backend, served.model) == ("onnx-int8", None)
    assert (reference.backend, reference.session) == ("pytorch", None)
    body = json.dumps({"features": REVIEWS})
    answers = [
        json.loads(
            handler.output_fn(
                handler.predict_fn(handler.input_fn(body, "application/json"), model), "application/json"
            )[0]
        )
        for model in (served, reference)
    ]
    for onnx_answer, torch_answer in zip(*answers, strict=True):
        assert onnx_answer.keys() == torch_answer.keys()
        assert (onnx_answer["tokens_read"], onnx_answer["truncated"]) == (
            torch_answer["tokens_read"],
            torch_answer["truncated"],
        )
        for name, probability in torch_answer["probabilities"].items():
            assert onnx_answer["probabilities"][name] == pytest.approx(probability, abs=0.05)
    assert answers[1][-1]["truncated"] is True


def test_a_parity_failure_is_named_and_the_package_serves_with_pytorch(
    handler: ModuleType, model_dir: Path, test_split: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No int8 model reproduces float32 probabilities exactly: a zero tolerance must fail, and say so.
    with caplog.at_level(logging.WARNING, logger="evaluate"):
        report = run_evaluation(model_dir, test_split, tmp_path, "--max-onnx-probability-difference", "0")
    entry = report[evaluate.ONNX_INT8_JSON_KEY]
    assert entry["packaged"] is False and entry["file"] is None
    assert entry["parity"]["holds"] is False
    [failure] = entry["parity"]["failures"]
    assert failure.startswith("max probability difference ") and failure.endswith(" > 0.0")
    assert "not packaged, parity failed: max probability difference" in entry["message"]
    assert "the package serves with PyTorch" in entry["message"]
    assert any("not packaged, parity failed" in record.getMessage() for record in caplog.records)

    unpacked = unpack(tmp_path / "package" / MODEL_ARCHIVE, tmp_path / "unpacked")
    assert not (unpacked / onnx_int8.INT8_MODEL_FILE).exists()
    assert handler.load_model(str(unpacked), "auto").backend == "pytorch"
    with pytest.raises(
        ValueError, match=r"INFERENCE_BACKEND=onnx but the package has no onnx/model\.int8\.onnx"
    ):
        handler.load_model(str(unpacked), "onnx")
    with pytest.raises(ValueError, match=r"INFERENCE_BACKEND='gpu': use one of auto, onnx, pytorch"):
        handler.load_model(str(unpacked), "gpu")


def test_the_parity_rule_names_each_figure_past_its_limit() -> None:
    rule = onnx_int8.ParityRule(
        min_label_agreement=0.99, max_f1_macro_difference=0.005, max_probability_difference=0.1
    )
    reference = [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]
    candidate = [[0.3, 0.6, 0.1], [0.2, 0.7, 0.1]]  # the first review changes label, by 0.3
    scores = {(0, 1): 1.0, (1, 1): 0.5}
    result = onnx_int8.parity(reference, candidate, lambda labels: scores[tuple(labels)], rule)
    assert result["label_agreement"]["value"] == 0.5
    assert result["max_probability_difference"]["value"] == pytest.approx(0.3)
    assert result["failures"] == [
        "label agreement 0.5000 < 0.99",
        "macro-F1 difference 0.5000 > 0.005",
        "max probability difference 0.3000 > 0.1",
    ]
    assert result["holds"] is False
    assert onnx_int8.parity(reference, reference, lambda labels: 1.0, rule)["holds"] is True


def test_the_pipeline_registers_the_evaluations_package_and_the_stage_picks_the_backend() -> None:
    register = PIPELINE.step(REGISTER)
    assert (register.model.step, register.model.output, register.model_file) == (
        EVALUATE,
        PACKAGE_OUTPUT,
        MODEL_ARCHIVE,
    )
    evaluation = PIPELINE.step(EVALUATE)
    assert PACKAGE_OUTPUT in {output.name for output in evaluation.outputs}
    assert ServingSettings().container_environment()["INFERENCE_BACKEND"] == "auto"
    assert ServingSettings(backend="pytorch").container_environment()["INFERENCE_BACKEND"] == "pytorch"


def test_the_local_host_gives_model_fn_the_stages_backend(
    packaged: tuple[dict, Path], tmp_path: Path
) -> None:
    """As the container does: ``model_fn`` reads ``INFERENCE_BACKEND``, which the stage's setting fills."""
    import os
    import shutil

    from model_build.pipeline_spec import SERVING_SOURCE_DIR
    from model_deploy.local.host import load
    from tests.conftest import REPO_ROOT

    _, unpacked = packaged
    folder = shutil.copytree(unpacked, tmp_path / "model")
    shutil.copytree(REPO_ROOT / SERVING_SOURCE_DIR, folder / "code")
    archive = evaluate.write_package(folder, {}, tmp_path / MODEL_ARCHIVE)
    before = os.environ.get("INFERENCE_BACKEND")
    for backend, served in (("auto", "onnx-int8"), ("pytorch", "pytorch")):
        host = load(archive, tmp_path / backend, ServingSettings(backend=backend))  # type: ignore[arg-type]
        try:
            assert host.model.backend == served
        finally:
            host.close()
    assert os.environ.get("INFERENCE_BACKEND") == before
