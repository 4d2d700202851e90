"""The tracking library the jobs and the local runner share (``model_build/steps/tracking.py``), on a SQLite
store as the local runner's: which run a job logs into, a tuning trial's child run, the reports flattened into
MLflow's metrics, and the rule that a failing server never fails the job."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import tracking
from mlflow import MlflowClient


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def execution_run(store: str, tmp_path: Path) -> tracking.Tracker:
    run = tracking.start_pipeline_run(
        store,
        "pipeline",
        "20261206T000000-abcdef",
        {"Epochs": 3, "LearningRate": 2e-4},
        {tracking.EXECUTION_TAG: "20261206T000000-abcdef", tracking.GIT_COMMIT_TAG: "abc123"},
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    assert run.active, run.reason
    return run


def test_a_job_logs_into_the_execution_run_it_is_given(store: str, tmp_path: Path) -> None:
    run = execution_run(store, tmp_path)
    job = tracking.from_environment(
        {tracking.RUN_ID_VARIABLE: run.run_id, tracking.TRACKING_URI_VARIABLE: store}
    )
    assert job.run_id == run.run_id
    job.log_metrics({"val_loss": 0.5, "nan_is_left_out": float("nan"), "none_too": None}, step=2)
    logged = MlflowClient(store).get_run(run.run_id).data
    assert logged.params == {"Epochs": "3", "LearningRate": "0.0002"} and logged.metrics == {"val_loss": 0.5}


def test_a_tuning_trial_logs_into_a_child_run_of_its_execution(store: str, tmp_path: Path) -> None:
    run = execution_run(store, tmp_path)
    trial = tracking.from_environment(
        {
            tracking.RUN_ID_VARIABLE: run.run_id,
            tracking.TRACKING_URI_VARIABLE: store,
            tracking.TRIAL_VARIABLE: "TrainModel-trial-03",
        }
    )
    assert trial.active and trial.run_id != run.run_id
    child = MlflowClient(store).get_run(trial.run_id)
    assert child.info.run_name == "TrainModel-trial-03"
    assert child.data.tags[tracking.PARENT_RUN_TAG] == run.run_id
    assert child.data.tags[tracking.EXECUTION_TAG] == "20261206T000000-abcdef"  # found by execution too
    # On SageMaker the trial variable is "1" and the child takes the training job's name.
    sagemaker_trial = tracking.from_environment(
        {
            tracking.RUN_ID_VARIABLE: run.run_id,
            tracking.TRACKING_URI_VARIABLE: store,
            tracking.TRIAL_VARIABLE: "1",
            tracking.TRAINING_JOB_NAME_VARIABLE: "tune-abc-004-1a2b3c4d",
        }
    )
    assert MlflowClient(store).get_run(sagemaker_trial.run_id).info.run_name == "tune-abc-004-1a2b3c4d"


@pytest.mark.parametrize(
    "environment",
    [{}, {tracking.RUN_ID_VARIABLE: tracking.NO_RUN, tracking.TRACKING_URI_VARIABLE: "sqlite:///x.db"}],
)
def test_without_a_run_the_job_is_untracked_and_says_why(environment: dict[str, str]) -> None:
    tracker = tracking.from_environment(environment)
    assert not tracker.active and tracking.RUN_ID_VARIABLE in tracker.reason
    tracker.log_metrics({"loss": 1.0})  # a no-op, not an error


def test_a_failing_server_is_one_warning_then_silence(caplog: pytest.LogCaptureFixture) -> None:
    class Refusing:
        calls = 0

        def log_batch(self, *args: object, **kwargs: object) -> None:
            Refusing.calls += 1
            raise PermissionError("AccessDenied: sagemaker-mlflow:LogBatch")

    tracker = tracking.Tracker(Refusing(), "run-1")
    with caplog.at_level(logging.WARNING, logger="tracking"):
        tracker.log_metrics({"loss": 1.0})
        tracker.set_tags({"a": "b"})
    assert not tracker.active and "AccessDenied" in tracker.reason and Refusing.calls == 1
    [warning] = caplog.records
    assert "off for the rest of this job" in warning.getMessage() and "LogBatch" in warning.getMessage()


def test_an_unreachable_server_leaves_the_execution_untracked_with_the_reason(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run = tracking.start_pipeline_run("http://127.0.0.1:9", "pipeline", "run", {}, {})
    assert not run.active and "http://127.0.0.1:9" in run.reason


def test_an_evaluation_report_becomes_the_models_the_baselines_and_the_champions_metrics() -> None:
    report = {
        "metrics": {"accuracy": {"value": 0.8}, "f1_macro": {"value": 0.75}, "per_class": {"negative": {}}},
        "baselines": {
            "majority_class": {"accuracy": {"value": 0.33}, "f1_macro": {"value": 0.17}},
            "tfidf_logistic_regression": {"skipped": "no train split", "f1_macro": {"value": None}},
        },
        "champion": {"f1_macro": {"value": 0.7}},
        "f1_macro_margin_over_best_baseline": {"value": 0.58},
        "f1_macro_margin_over_champion": {"value": 0.05},
    }
    assert tracking.evaluation_metrics(report) == {
        "test.accuracy": 0.8,
        "test.f1_macro": 0.75,
        "baseline.majority_class.accuracy": 0.33,
        "baseline.majority_class.f1_macro": 0.17,
        "baseline.tfidf_logistic_regression.f1_macro": None,  # skipped: left out when logged
        "champion.f1_macro": 0.7,
        "f1_macro_margin_over_best_baseline": 0.58,
        "f1_macro_margin_over_champion": 0.05,
    }


def test_a_cached_steps_reports_are_logged_from_its_outputs(store: str, tmp_path: Path) -> None:
    run = execution_run(store, tmp_path)
    output = tmp_path / "output"
    output.mkdir()
    epochs = [
        {"epoch": n, "train_loss": 1 / n, "val_loss": 1.1 / n, "val_acc": 0.5, "val_f1_macro": 0.4}
        for n in (1, 2)
    ]
    report = {"epochs": epochs, "best_epoch": 2, "hyperparameters": {"epochs": 2}, "diagnostics": {}}
    (output / tracking.TRAINING_REPORT_FILE).write_text(json.dumps(report))
    (output / "tokens.parquet").write_bytes(b"data, not a report")
    tracking.cached_step_reports(run, [output])
    client = MlflowClient(store)
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "train_loss")] == [
        (1, 1.0),
        (2, 0.5),
    ]
    assert [a.path for a in client.list_artifacts(run.run_id, "training")] == [
        "training/training_metrics.json"
    ]
