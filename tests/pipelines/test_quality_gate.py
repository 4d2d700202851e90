"""The quality gate on the case that fooled the accuracy-only gate: imbalanced reviews, a majority-class model.

Reviews are drawn from the sample at about 26% / 9% / 65% (negative / neutral / positive), the split the issue
reported on real public reviews. The "model" is the tiny RoBERTa with its classifier biased so that it always
answers positive: accuracy 0.65, above ``MinAccuracy``. The real ``evaluate.py`` scores it and fits both
baselines on the train split; then the pipeline's own gate (its ``ConditionStep`` and ``FailStep``, run by the
local runner's handlers) must refuse it and say which checks failed, with their values and thresholds.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from model_build import pipeline_spec as ps
from pipelines.local.executions import ExecutionRecord, Status
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace
from pipelines.runners.local import LocalRunner
from tests.model_build.review_splits import labelled_model, sample_reviews, write_split

STEPS_DIR = Path(__file__).resolve().parents[2] / "model_build" / "steps"
SHARES = {-1: 0.26, 0: 0.09, 1: 0.65}
COPY_REPORT = """
import argparse, pathlib, shutil
parser = argparse.ArgumentParser()
parser.add_argument("--report"); parser.add_argument("--output-data")
args = parser.parse_args()
shutil.copy(args.report, pathlib.Path(args.output_data) / "evaluation.json")
"""


def imbalanced(reviews: list[tuple[str, int]], total: int) -> list[tuple[str, int]]:
    chosen = []
    for sentiment, share in SHARES.items():
        of_class = [review for review in reviews if review[1] == sentiment]
        chosen += of_class[: round(share * total)]
    return chosen


@pytest.fixture(scope="module")
def majority_report(
    tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path, sample_csv: Path
) -> Path:
    """evaluation.json of a model that answers positive for every review, from the real evaluation script."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("gate")
    model_dir = labelled_model(tiny_roberta_dir, root / "model", max_seq_length=64)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    positive = model.config.label2id["1"]
    with torch.no_grad():
        model.classifier.out_proj.bias.fill_(-50.0)
        model.classifier.out_proj.bias[positive] = 50.0
    model.save_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    reviews = sample_reviews(sample_csv)
    train = imbalanced(reviews[:1600], 400)
    test = imbalanced(reviews[1600:], 100)
    write_split(root / "train", train, tokenizer, 64, "train")
    write_split(root / "test", test, tokenizer, 64, "test")
    result = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "--model-path", str(model_dir),
            "--test-data", str(root / "test"),
            "--train-data", str(root / "train"),
            "--output-data", str(root / "evaluation"),
            "--max-seq-length", "64",
        ],
        cwd=STEPS_DIR, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "evaluation" / ps.EVALUATION_FILE


def gate_only_spec(report: Path) -> ps.PipelineSpec:
    """The pipeline's gate, fed by a step that hands over ``report`` as the evaluation step's output."""
    evaluate = ps.ProcessingStep(
        name=ps.EVALUATE,
        script="copy_report.py",
        instance_type="ml.m5.large",
        inputs=(),
        outputs=(ps.ProcessingOutput("evaluation", f"{ps.PROCESSING_OUTPUT}/evaluation"),),
        arguments={"--report": str(report), "--output-data": f"{ps.PROCESSING_OUTPUT}/evaluation"},
        property_files=(ps.PropertyFile(ps.EVALUATION_REPORT, "evaluation", ps.EVALUATION_FILE),),
    )
    # Without the data check before it: no pre-training report to attach.
    register = dataclasses.replace(
        ps.PIPELINE.step(ps.REGISTER),
        model=ps.StepOutput(ps.EVALUATE, "evaluation"),
        data_report=None,
        data_report_file="",
        data_report_metadata=(),
    )
    return ps.PipelineSpec(
        parameters=ps.PIPELINE.parameters,
        steps=(evaluate, ps.PIPELINE.step(ps.CHECK), register, ps.PIPELINE.step(ps.FAIL)),
    )


def run_gate(report: Path, tmp_path: Path) -> tuple[ExecutionRecord, Workspace]:
    """The pipeline's gate on ``report`` (in a run folder of its own), as the local runner runs it."""
    repo = tmp_path / "repo"
    (repo / "model_build" / "steps").mkdir(parents=True)
    (repo / "model_build" / "steps" / "copy_report.py").write_text(COPY_REPORT)
    workspace = Workspace.open(tmp_path / "run")
    record = LocalRunner(workspace, gate_only_spec(report), repo_root=repo, console=io.StringIO()).run()
    return record, workspace


def test_a_majority_class_model_clears_accuracy_but_not_the_gate(
    majority_report: Path, tmp_path: Path
) -> None:
    report = json.loads(majority_report.read_text())
    assert report["metrics"]["accuracy"]["value"] == pytest.approx(
        0.65, abs=0.01
    )  # would pass MinAccuracy 0.5
    assert report["metrics"]["f1_macro"]["value"] < 0.3
    assert report["baselines"]["tfidf_logistic_regression"]["f1_macro"]["value"] > 0.5

    record, workspace = run_gate(majority_report, tmp_path)

    assert record.status == Status.FAILED
    checks = {check["check"]: check["outcome"] for check in record.step(ps.CHECK).detail["checks"]}
    assert checks == {
        "accuracy": True,
        "macro-F1": False,
        "macro-F1 margin over the best baseline": False,
        "not worse than the champion": True,  # no champion: holds, and the message says so
    }
    reason = record.failure_reason or ""
    assert "failed the quality gate and was not registered" in reason
    for threshold in ("(MinAccuracy 0.5)", "(MinF1Macro 0.5)", "(MinBaselineMargin -0.1)"):
        assert threshold in reason
    f1 = report["metrics"]["f1_macro"]["value"]
    assert f"macro-F1 {f1:.4g} (MinF1Macro" in reason and str(f1) not in reason  # rounded, not 16 digits
    assert "Next: read EvaluateModel's evaluation.json" in reason and "--param Epochs=N" in reason
    assert "champion: no champion: none named (no version serves production" in reason
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        assert registry.list(workspace.config.model_package_group_name) == []


def test_the_same_gate_registers_a_model_that_clears_every_check(
    majority_report: Path, tmp_path: Path
) -> None:
    good = json.loads(majority_report.read_text())
    good["metrics"]["f1_macro"]["value"] = 0.8
    good["f1_macro_margin_over_best_baseline"]["value"] = 0.05
    path = tmp_path / "good.json"
    path.write_text(json.dumps(good))
    record, _ = run_gate(path, tmp_path)
    assert record.status == Status.SUCCEEDED, record.failure_reason
    assert record.skipped == [ps.FAIL]


def test_a_baseline_margin_that_could_not_be_computed_fails_the_check(
    majority_report: Path, tmp_path: Path
) -> None:
    """evaluate.py writes null when the baselines were skipped: the gate fails on it instead of crashing."""
    report = json.loads(majority_report.read_text())
    report["metrics"]["f1_macro"]["value"] = 0.8
    report["f1_macro_margin_over_best_baseline"] = {"value": None, "skipped": "no --train-data given"}
    path = tmp_path / "skipped.json"
    path.write_text(json.dumps(report))
    record, _ = run_gate(path, tmp_path)
    assert record.status == Status.FAILED
    margin = record.step(ps.CHECK).detail["checks"][2]
    assert margin["left"] is None and margin["outcome"] is False


def test_a_model_worse_than_the_champion_is_not_registered_and_the_failure_says_by_how_much(
    majority_report: Path, tmp_path: Path
) -> None:
    """Every other check holds; the champion's does not (as evaluate.py writes it for a worse challenger)."""
    report = json.loads(majority_report.read_text())
    report["metrics"]["f1_macro"]["value"] = 0.8
    report["f1_macro_margin_over_best_baseline"]["value"] = 0.05
    message = "macro-F1 0.8000 vs the champion's 0.8500 (arn:...:model-package/g/3): margin -0.0500 < 0.0000"
    report["champion_check"] = {"holds": False, "outcome": "fails", "min_margin": 0.0, "message": message}
    path = tmp_path / "worse.json"
    path.write_text(json.dumps(report))
    record, workspace = run_gate(path, tmp_path)
    assert record.status == Status.FAILED
    checks = {check["check"]: check["outcome"] for check in record.step(ps.CHECK).detail["checks"]}
    assert [name for name, holds in checks.items() if not holds] == ["not worse than the champion"]
    assert f"champion: {message}." in (record.failure_reason or "")
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        assert registry.list(workspace.config.model_package_group_name) == []
