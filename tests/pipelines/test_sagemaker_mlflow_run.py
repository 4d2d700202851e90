"""``pipelines run --sagemaker`` and the execution's MLflow run: created before the start (its id becomes the
``MlflowRunId`` parameter the tracking jobs get), then, after ``--wait``, tagged with the registered version and
ended with the execution's status. The tracking server is stood in for by a SQLite store (the same client calls;
the ARN only changes how requests are signed)."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from model_build.config import load_config
from model_build.pipeline_spec import MLFLOW_RUN_PARAMETER
from model_build.steps import tracking
from pipelines.runners.sagemaker import finish_mlflow_run, with_mlflow_run

PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/review-sentiment-dev-models/7"


class Steps:
    """A SageMaker client that lists an execution's steps, as ListPipelineExecutionSteps answers."""

    def list_pipeline_execution_steps(self, **kwargs: object) -> dict[str, object]:
        return {
            "PipelineExecutionSteps": [
                {
                    "StepName": "RegisterModel",
                    "StepStatus": "Succeeded",
                    "Metadata": {"RegisterModel": {"Arn": PACKAGE}},
                },
                {"StepName": "TrainModel", "StepStatus": "Succeeded", "Metadata": {}},
            ]
        }


def test_the_run_is_created_before_the_start_and_names_the_version_after_it(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CODEBUILD_RESOLVED_SOURCE_VERSION", "0123abcd")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    said: list[str] = []
    parameters, run = with_mlflow_run(
        {"Epochs": 3, MLFLOW_RUN_PARAMETER: tracking.NO_RUN}, load_config(), store, said.append
    )
    assert run.active and parameters == {"Epochs": 3, MLFLOW_RUN_PARAMETER: run.run_id}
    assert said == [f"MLflow run {run.run_id} on {store}"]
    logged = MlflowClient(store).get_run(run.run_id)
    assert logged.data.params == {"Epochs": "3"}  # the run id is no parameter of its own run
    assert logged.data.tags[tracking.GIT_COMMIT_TAG] == "0123abcd"

    finish_mlflow_run(
        run, Steps(), "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1", "Succeeded"
    )
    ended = MlflowClient(store).get_run(run.run_id)
    assert ended.info.status == "FINISHED"
    assert ended.data.tags[tracking.MODEL_PACKAGE_ARN_TAG] == PACKAGE
    assert ended.data.tags[tracking.MODEL_VERSION_TAG] == "7"


def test_without_a_server_or_with_an_unreachable_one_the_execution_starts_untracked(monkeypatch) -> None:
    said: list[str] = []
    parameters, run = with_mlflow_run({"Epochs": 3}, load_config(), "", said.append)
    assert parameters == {"Epochs": 3} and not run.active and said == []
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    parameters, run = with_mlflow_run({"Epochs": 3}, load_config(), "http://127.0.0.1:9", said.append)
    assert parameters == {"Epochs": 3} and not run.active
    assert said and said[0].startswith(
        "MLflow: not tracked (cannot create the execution's run on http://127.0.0.1:9"
    )
