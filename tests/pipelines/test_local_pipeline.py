"""``python -m pipelines run --local`` end to end on the sample data: the real scripts, small settings.

This is what ``make run`` runs (see ``test_make_run_runs_the_local_pipeline``); one run serves every test of
the module, and the condition's false branch reruns it from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_build.config import load_config
from pipelines.local.executions import ExecutionStore, Status
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "--param", "Epochs=1",
    "--param", "TrainStepsPerEpoch=2",
    "--param", "ValidationStepsPerEpoch=1",
    "--param", "TrainBatchSize=8",
    "--param", "MaxSeqLength=64",
]  # fmt: skip
GROUP = load_config().model_package_group_name
OPEN_GATE = ["--param", "MinAccuracy=0.0", "--param", "MinF1Macro=0.0", "--param", "MinBaselineMargin=-1.0",
             "--param", "MinChampionMargin=-1.0"]  # fmt: skip
"""Two training steps learn nothing: the gate is opened so that the run registers (its mechanics are tested)."""


def cli(run_dir: Path, *arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *arguments, "--run-dir", str(run_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlops")


@pytest.fixture(scope="module")
def first_run(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return cli(run_dir, "run", "--local", *SMALL, *OPEN_GATE)


@pytest.fixture(scope="module")
def workspace(run_dir: Path) -> Workspace:
    return Workspace.open(run_dir)


def test_run_registers_a_version_and_says_what_to_do_next(first_run, workspace):
    assert first_run.returncode == 0, first_run.stdout[-3000:] + first_run.stderr[-3000:]
    out = first_run.stdout
    assert f"Registered {GROUP} version 1: PendingManualApproval" in out
    assert "accuracy" in out and "f1_macro" in out
    model_line = next(line for line in out.splitlines() if line.strip().startswith("model "))
    assert Path(model_line.split()[-1]).name == "model.tar.gz" and Path(model_line.split()[-1]).is_file()
    pictures = [Path(line.split()[-1]) for line in out.splitlines() if line.strip().startswith("picture ")]
    assert "confusion_matrix.png" in [p.name for p in pictures] and all(p.is_file() for p in pictures)
    next_commands = [line.strip() for line in out.splitlines() if " -m pipelines " in line]
    for command in ("executions", "registry approve 1", "features query"):
        # Each names an interpreter that has the dependencies (.venv/bin/python3 here), not a bare `python`.
        assert any(
            line.split(" -m pipelines ")[0].rsplit("/", 1)[-1].startswith("python")
            and line.split(" -m pipelines ")[1].startswith(command)
            for line in next_commands
        ), next_commands
    # Progress: every step is announced, and the scripts' own progress bars come through.
    for step in (
        "[1/7] CheckData",
        "[2/7] ProcessReviews",
        "[3/7] TrainModel",
        "[4/7] EvaluateModel",
        "[5/7] CheckModelQuality",
    ):
        assert step in out
    assert "epoch 1/1" in out


def test_execution_record_has_every_step_with_timings_outputs_and_logs(first_run, workspace):
    [record] = ExecutionStore(workspace.executions_dir).list()
    assert record.status == Status.SUCCEEDED
    assert [(s.name, s.status) for s in record.steps] == [
        ("CheckData", Status.SUCCEEDED),
        ("ProcessReviews", Status.SUCCEEDED),
        ("TrainModel", Status.SUCCEEDED),
        ("EvaluateModel", Status.SUCCEEDED),
        ("CheckModelQuality", Status.SUCCEEDED),
        ("RegisterModel", Status.SUCCEEDED),
    ]
    assert record.skipped == ["FailQualityGate"]
    assert all(step.duration_s is not None for step in record.steps)
    assert record.parameters["Epochs"] == 1 and record.parameters["MinAccuracy"] == 0.0
    train = record.step("TrainModel")
    assert set(train.metrics) == {
        "train:loss",
        "validation:loss",
        "validation:accuracy",
        "validation:f1_macro",
        "validation:best_f1_macro",
    }
    assert "epoch=1 train_loss=" in Path(train.log).read_text()
    for name in ("train", "validation", "test", "rejects", "features"):
        assert workspace.local_path(record.step("ProcessReviews").outputs[name]).is_dir()


def test_registered_version_has_metrics_artifact_and_lineage(first_run, workspace, sample_csv):
    [record] = ExecutionStore(workspace.executions_dir).list()
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        [package] = registry.list(GROUP)
    assert package.version == 1
    # The evaluation's package: the trained model, plus its int8 ONNX model when it passed the parity check.
    assert package.model_data_url == f"{record.step('EvaluateModel').outputs['package']}/model.tar.gz"
    assert workspace.local_path(package.model_data_url).is_file()
    assert package.metric("accuracy") == record.step("CheckModelQuality").detail["checks"][0]["left"]
    assert package.content_types == ["application/json", "application/jsonlines", "text/csv"]
    assert package.inference_instance_types == ["ml.m5.large"]
    assert package.lineage.execution_id == record.id
    assert package.lineage.input_data_sha256 == hashlib.sha256(sample_csv.read_bytes()).hexdigest()
    assert package.lineage.parameters["Epochs"] == "1"
    assert package.lineage.git_commit  # this test runs in a git checkout


def test_registered_version_carries_the_data_check_report_and_its_figures(first_run, run_dir, workspace):
    [record] = ExecutionStore(workspace.executions_dir).list()
    report_uri = f"{record.step('CheckData').outputs['report']}/data_check.json"
    report = json.loads(workspace.local_path(report_uri).read_text())
    assert report["gate"]["passed"] and report["rows"] == 2400
    assert workspace.local_path(f"{record.step('CheckData').outputs['report']}/data_check.png").is_file()
    described = json.loads(cli(run_dir, "registry", "describe", "1").stdout)
    bias = described["ModelMetrics"]["Bias"]["PreTrainingReport"]
    assert bias == {"ContentType": "application/json", "S3Uri": report_uri}
    metadata = described["CustomerMetadataProperties"]
    assert metadata["DataCheckRows"] == "2400"
    assert float(metadata["DataCheckMaxAbsDPL"]) == pytest.approx(report["summary"]["max_abs_DPL"])
    listing = cli(run_dir, "registry", "list").stdout
    assert "data check" in listing and "max |DPL|" in listing


def test_processing_ingested_the_records_into_the_feature_store(first_run, run_dir, workspace):
    summary_folder = workspace.local_path(
        ExecutionStore(workspace.executions_dir).list()[0].step("ProcessReviews").outputs["train"]
    )
    assert summary_folder.is_dir()
    result = cli(
        run_dir, "features", "query", "SELECT split_type, count(*) AS n FROM reviews GROUP BY 1 ORDER BY 1"
    )
    assert result.returncode == 0, result.stderr
    counts = {line.split()[0]: int(line.split()[1]) for line in result.stdout.splitlines()[1:]}
    assert set(counts) == {"test", "train", "validation"} and sum(counts.values()) > 100
    review_id = cli(run_dir, "features", "query", "SELECT review_id FROM reviews LIMIT 1").stdout.split()[1]
    got = cli(run_dir, "features", "get", review_id)
    assert got.returncode == 0 and json.loads(got.stdout)["review_id"] == review_id


def test_the_condition_false_branch_fails_the_run_reusing_the_cache(first_run, run_dir, workspace):
    result = cli(run_dir, "run", "--local", *SMALL, *OPEN_GATE, "--param", "MinAccuracy=1.0")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "failed the quality gate and was not registered" in result.stdout
    assert "(MinAccuracy 1.0)" in result.stdout and "accuracy: metrics.accuracy.value = " in result.stdout
    record = ExecutionStore(workspace.executions_dir).load("latest")
    assert record.status == Status.FAILED
    assert [s.name for s in record.steps] == [
        "CheckData", "ProcessReviews", "TrainModel", "EvaluateModel", "CheckModelQuality", "FailQualityGate"
    ]  # fmt: skip
    assert all(step.cache_hit for step in record.steps[:4])
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        assert len(registry.list(GROUP)) == 1  # nothing registered
    # Its MLflow run has the reused steps' numbers, logged from their cached reports, and says so.
    from mlflow import MlflowClient

    run = MlflowClient(workspace.mlflow_tracking_uri).get_run(record.parameters["MlflowRunId"])
    assert run.info.status == "FAILED" and "quality gate" in run.data.tags["pipeline.failure_reason"]
    first = ExecutionStore(workspace.executions_dir).list()[0].id
    assert run.data.tags["pipeline.step.TrainModel"] == f"cache hit of {first}"
    assert "val_f1_macro" in run.data.metrics and "test.f1_macro" in run.data.metrics

    listing = cli(run_dir, "executions").stdout
    assert "Succeeded" in listing and "Failed" in listing and "cached" in listing


def test_each_execution_is_an_mlflow_run_linked_to_its_version(first_run, run_dir, workspace, sample_csv):
    """The run folder's MLflow store, read back through MLflow's client: the execution's parameters, data
    fingerprint and commit, training's epochs, the evaluation beside the baselines, the files, and the
    registered version (the run's tags, a logged model of the run, and the version's link back)."""
    from mlflow import MlflowClient

    record = ExecutionStore(workspace.executions_dir).list()[0]  # the first run: it registered version 1
    run_id = record.parameters["MlflowRunId"]
    client = MlflowClient(workspace.mlflow_tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == record.id
    assert run.data.params["Epochs"] == "1" and run.data.params["MinAccuracy"] == "0.0"
    assert run.data.params["data.InputDataUrl.sha256"] == hashlib.sha256(sample_csv.read_bytes()).hexdigest()
    tags = run.data.tags
    assert tags["pipeline.execution_id"] == record.id and tags["mlflow.source.git.commit"]
    assert tags["registry.model_version"] == "1"
    assert tags["registry.model_package_arn"].endswith(f"model-package/{GROUP}/1")
    assert [m.step for m in client.get_metric_history(run_id, "val_f1_macro")] == [1]
    for name in (
        "test.accuracy",
        "test.f1_macro",
        "baseline.majority_class.f1_macro",
        "f1_macro_margin_over_best_baseline",
    ):
        assert name in run.data.metrics, name
    assert {f"diagnostic.{rule}" for rule in ("overfitting", "gradient_norm")} <= set(tags)
    artifacts = {
        item.path for folder in ("training", "evaluation") for item in client.list_artifacts(run_id, folder)
    }
    assert {
        "evaluation/evaluation.json",
        "evaluation/confusion_matrix.png",
        "training/training_curves.png",
    } <= artifacts
    [model] = client.search_logged_models([run.info.experiment_id])
    assert (
        model.source_run_id == run_id
        # the registered package: the evaluation's, with the int8 model when it passed its parity check
        and model.tags["model_data_url"] == f"{record.step('EvaluateModel').outputs['package']}/model.tar.gz"
    )

    described = json.loads(cli(run_dir, "registry", "describe", "1").stdout)
    assert described["CustomerMetadataProperties"]["MlflowRunId"] == run_id
    assert described["MlflowRun"]["Url"].endswith(f"/#/runs/{run_id}")


def test_registry_commands_approve_and_refuse_with_clear_errors(first_run, run_dir, workspace):
    approved = cli(run_dir, "registry", "approve", "1", "--note", "checked the confusion matrix")
    assert approved.returncode == 0 and "is now Approved" in approved.stdout
    assert "Approved" in cli(run_dir, "registry", "list").stdout
    described = json.loads(cli(run_dir, "registry", "describe", "1").stdout)
    assert described["ApprovalDescription"] == "checked the confusion matrix"
    assert cli(run_dir, "registry", "reject", "1", "--note", "bias found").returncode == 0
    refused = cli(run_dir, "registry", "approve", "1")
    assert refused.returncode == 2 and "is Rejected; it cannot become Approved" in refused.stderr
    unknown = cli(run_dir, "registry", "approve", "42")
    assert unknown.returncode == 2 and "has no version 42" in unknown.stderr
    statuses = [event["detail"]["ModelApprovalStatus"] for event in _events(workspace)]
    assert statuses == ["PendingManualApproval", "Approved", "Rejected"]


def _events(workspace: Workspace) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(workspace.events_dir.glob("*.json"))]


def test_make_run_runs_the_local_pipeline():
    dry_run = subprocess.run(
        ["make", "-n", "run", "ARGS=--param Epochs=1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "-m pipelines run --local --param Epochs=1" in dry_run.stdout
