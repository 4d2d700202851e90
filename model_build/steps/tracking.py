"""Experiment tracking: what a pipeline execution logs to MLflow, and the rule that logging never fails a job.

One pipeline execution is one MLflow run. The runner that starts the execution creates it (the local runner in
the run folder's SQLite store, ``pipelines run --sagemaker`` on the project's SageMaker managed MLflow tracking
server) and hands its id to the jobs in :data:`RUN_ID_VARIABLE`, with the server in ``MLFLOW_TRACKING_URI``
(MLflow's own variable). A job then logs what only it knows into that run: training its per-epoch curves and
diagnostics, evaluation the test metrics beside the baselines and the champion. A tuning trial (the job has
:data:`TRIAL_VARIABLE`) logs into a child run of its own, so the search's trials sit under their execution.

Only MLflow's client is used (``MlflowClient``, explicit run ids, no fluent global state), and it is imported
lazily: a job without :data:`RUN_ID_VARIABLE` or without MLflow installed trains as before. On AWS the tracking
URI is the server's ARN, which the ``sagemaker-mlflow`` plugin (in the jobs' requirements) signs requests for.

Logging never fails a job: the first error (an unreachable server, a refused permission, a full disk) is one
warning that names the reason, and the job goes on without tracking. MLflow's HTTP client retries for minutes by
default; here it gives up after :data:`HTTP_RETRIES` retries of :data:`HTTP_TIMEOUT_S` seconds each.

The functions that log a step's report (:func:`log_training_report`, :func:`log_evaluation_report`) read only
the files the step writes, so the local runner logs a cached step (whose job did not run) with the same code.
No import of the other step modules: the local runner imports this one as ``model_build.steps.tracking``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger("tracking")

RUN_ID_VARIABLE = "MLOPS_MLFLOW_RUN_ID"
"""The pipeline execution's run. Not MLflow's own ``MLFLOW_RUN_ID``, which its fluent API would resume by itself."""
NO_RUN = "none"
"""The run id of an execution that is not tracked (a value, since the registry's metadata takes no empty one)."""
TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
TRIAL_VARIABLE = "MLOPS_TUNING_TRIAL"
"""Set on a tuning trial's job (to the trial's name, or ``1`` on SageMaker, where the job's own name is used)."""
TRAINING_JOB_NAME_VARIABLE = "TRAINING_JOB_NAME"
"""What SageMaker names a training job inside its container: a trial's child run takes that name."""
HTTP_RETRIES = 2
HTTP_TIMEOUT_S = 20

EXECUTION_TAG = "pipeline.execution_id"
PIPELINE_TAG = "pipeline.name"
STEP_TAG_PREFIX = "pipeline.step."
"""``pipeline.step.<step>`` = ``ran`` or ``cache hit of <execution>``: where the step's numbers come from."""
MODEL_PACKAGE_ARN_TAG = "registry.model_package_arn"
MODEL_VERSION_TAG = "registry.model_version"
MODEL_DATA_URL_TAG = "model_data_url"
DIAGNOSTIC_TAG_PREFIX = "diagnostic."
PARENT_RUN_TAG = "mlflow.parentRunId"
"""MLflow's own tag for a nested run: its UI shows the trials under their execution's run."""
GIT_COMMIT_TAG = "mlflow.source.git.commit"
TRAINING_ARTIFACTS = "training"
EVALUATION_ARTIFACTS = "evaluation"
TRAINING_REPORT_FILE = "training_metrics.json"
"""What ``train.py`` writes to its output data: each epoch, the kept one, the hyperparameters, the diagnostics."""
EVALUATION_REPORT_FILE = "evaluation.json"
REPORT_SUFFIXES = (".json", ".png")
"""What of a step's output folder goes into the run as artifacts: its reports and pictures, not data."""


class Tracker:
    """Logs into one MLflow run, or does nothing: after the first failure every call is a no-op.

    ``reason`` says why it is off (no run configured, the error that stopped it), for the job's log.
    """

    def __init__(self, client: Any = None, run_id: str | None = None, reason: str = "") -> None:
        self.client, self.run_id = client, run_id
        self.reason = reason if client is None or run_id is None else ""

    @property
    def active(self) -> bool:
        return self.client is not None and self.run_id is not None and not self.reason

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self.active:
            return None
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except Exception as error:  # never fail the job: the server, the network, permissions, the disk
            self.reason = f"{what} failed: {type(error).__name__}: {str(error)[:300]}"
            logger.warning(
                "MLflow tracking is off for the rest of this job (run %s): %s", self.run_id, self.reason
            )
            return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(str(key), _text(value)[:6000]) for key, value in sorted(params.items())]
        for start in range(0, len(entries), 100):  # MLflow's batch limit is 100 parameters
            self._call("logging parameters", "log_batch", self.run_id, params=entries[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float | None], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        entries = [
            Metric(key, float(value), stamp, step)
            for key, value in sorted(metrics.items())
            if value is not None and math.isfinite(float(value))
        ]
        for start in range(0, len(entries), 1000):
            self._call("logging metrics", "log_batch", self.run_id, metrics=entries[start : start + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(str(key), _text(value)[:8000]) for key, value in sorted(tags.items())]
        if entries:
            self._call("setting tags", "log_batch", self.run_id, tags=entries)

    def log_artifacts(self, paths: Iterable[Path], folder: str) -> None:
        for path in sorted(paths):
            self._call(f"uploading {path.name}", "log_artifact", self.run_id, str(path), folder)

    def log_dict(self, document: Mapping[str, Any], file: str) -> None:
        self._call(f"writing {file}", "log_dict", self.run_id, dict(document), file)

    def log_model_link(self, name: str, model_data_url: str, tags: Mapping[str, str]) -> str | None:
        """The model as an MLflow logged model of this run, pointing at its ``model.tar.gz`` (not a copy)."""
        run = self._call("reading the run", "get_run", self.run_id)
        if run is None:
            return None
        model = self._call(
            "logging the model",
            "create_logged_model",
            run.info.experiment_id,
            name=name,
            source_run_id=self.run_id,
            tags={MODEL_DATA_URL_TAG: model_data_url, **tags},
        )
        if model is None:
            return None
        from mlflow.entities import LoggedModelStatus

        # Ready: nothing more is uploaded, the model is its model.tar.gz where the registry keeps it.
        self._call("finalizing the model", "finalize_logged_model", model.model_id, LoggedModelStatus.READY)
        self.set_tags({MODEL_DATA_URL_TAG: model_data_url})
        return str(model.model_id)

    def child(self, name: str) -> Tracker:
        """A nested run under this one (a tuning trial); off when this one is."""
        run = self._call("reading the run", "get_run", self.run_id)
        if run is None:
            return Tracker(reason=self.reason or "no parent run")
        created = self._call(
            "creating a child run",
            "create_run",
            run.info.experiment_id,
            run_name=name,
            tags={PARENT_RUN_TAG: self.run_id, **_inherited(run.data.tags)},
        )
        if created is None:
            return Tracker(reason=self.reason)
        return Tracker(self.client, created.info.run_id)

    def end(self, status: str = "FINISHED") -> None:
        self._call("ending the run", "set_terminated", self.run_id, status)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _inherited(tags: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if key in (EXECUTION_TAG, PIPELINE_TAG, GIT_COMMIT_TAG)}


def bounded_http_retries(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """An unreachable server costs a job seconds, not MLflow's default minutes of backoff."""
    environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
    environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT_S))


def from_environment(environ: Mapping[str, str] | None = None) -> Tracker:
    """The job's tracker: its execution's run, or a trial's child run of it; off when none is configured."""
    environ = os.environ if environ is None else environ
    run_id = environ.get(RUN_ID_VARIABLE, "").strip()
    uri = environ.get(TRACKING_URI_VARIABLE, "").strip()
    if run_id in ("", NO_RUN) or not uri:
        return Tracker(reason=f"no MLflow run configured ({RUN_ID_VARIABLE} and {TRACKING_URI_VARIABLE})")
    bounded_http_retries()
    try:
        from mlflow import MlflowClient

        tracker = Tracker(MlflowClient(tracking_uri=uri), run_id)
    except Exception as error:  # MLflow missing or its plugin failing to load: train untracked
        tracker = Tracker(reason=f"cannot start MLflow's client: {type(error).__name__}: {error}")
    if not tracker.active:
        logger.warning("MLflow tracking is off: %s", tracker.reason)
        return tracker
    trial = environ.get(TRIAL_VARIABLE, "").strip()
    if trial:
        name = environ.get(TRAINING_JOB_NAME_VARIABLE, "") if trial == "1" else trial
        return tracker.child(name or "trial")
    return tracker


def start_pipeline_run(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    artifact_location: str | None = None,
) -> Tracker:
    """Create the run of one pipeline execution in ``experiment``, created when missing.

    ``artifact_location`` applies to a new experiment only (the local run folder's; a SageMaker tracking
    server puts artifacts in its own artifact store). Never raises: an unreachable server is an inactive
    tracker whose ``reason`` says why, and the execution runs untracked.
    """
    bounded_http_retries()
    try:
        from mlflow import MlflowClient

        # A new SQLite store is created by migrations that log each step at INFO: not the run's business.
        for name in ("mlflow.store.db.utils", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else client.create_experiment(experiment, artifact_location=artifact_location)
        )
        run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    except Exception as error:  # the server, the network, permissions: the execution goes on untracked
        reason = (
            f"cannot create the execution's run on {tracking_uri}: {type(error).__name__}: {str(error)[:300]}"
        )
        logger.warning("MLflow tracking is off: %s", reason)
        return Tracker(reason=reason)
    tracker = Tracker(client, run.info.run_id)
    tracker.log_params(params)
    return tracker


def cached_step_reports(tracker: Tracker, folders: Iterable[Path]) -> None:
    """Log a cached step's reports from the outputs it reused (its job did not run, so did not log them)."""
    for folder in folders:
        for file, log in (
            (TRAINING_REPORT_FILE, log_training_report),
            (EVALUATION_REPORT_FILE, log_evaluation_report),
        ):
            report = read_json(folder / file) if (folder / file).is_file() else None
            if report is not None:
                log(tracker, report, folder)


# ------------------------------------------------------------------------------------------ step reports
def report_files(folder: Path) -> list[Path]:
    return [path for path in sorted(folder.glob("*")) if path.is_file() and path.suffix in REPORT_SUFFIXES]


def training_metrics(report: Mapping[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """(epoch, metrics) from ``training_metrics.json``: what the run's curves show, step = epoch."""
    return [
        (
            int(epoch["epoch"]),
            {
                "train_loss": epoch["train_loss"],
                "val_loss": epoch["val_loss"],
                "val_accuracy": epoch["val_acc"],
                "val_f1_macro": epoch["val_f1_macro"],
            },
        )
        for epoch in report.get("epochs", [])
    ]


def log_training_report(tracker: Tracker, report: Mapping[str, Any], folder: Path | None) -> None:
    """Training's hyperparameters, each epoch's numbers, the kept epoch, the diagnostics and the pictures."""
    tracker.log_params({f"train.{key}": value for key, value in report.get("hyperparameters", {}).items()})
    for epoch, metrics in training_metrics(report):
        tracker.log_metrics(metrics, step=epoch)
    tracker.log_metrics(
        {
            "best_epoch": report.get("best_epoch"),
            "best_val_f1_macro": report.get("best_val_f1_macro"),
            "best_val_accuracy": report.get("best_val_acc"),
            "best_val_loss": report.get("best_val_loss"),
        }
    )
    log_diagnostics(tracker, report.get("diagnostics", {}))
    if folder is not None:
        tracker.log_artifacts(report_files(folder), TRAINING_ARTIFACTS)


def log_diagnostics(tracker: Tracker, diagnostics: Mapping[str, Any]) -> None:
    """Each rule's verdict as a tag (``diagnostic.<rule>`` = ok / warn / stop), the profile as metrics."""
    tracker.set_tags(
        {f"{DIAGNOSTIC_TAG_PREFIX}{v['rule']}": v["verdict"] for v in diagnostics.get("verdicts", [])}
    )
    tracker.log_metrics({f"profile.{key}": value for key, value in diagnostics.get("profile", {}).items()})


def evaluation_metrics(report: Mapping[str, Any]) -> dict[str, float | None]:
    """``evaluation.json`` flattened: the model's test metrics, each baseline's, the champion's, the margins."""

    def scores(prefix: str, entry: Mapping[str, Any]) -> dict[str, float | None]:
        return {
            f"{prefix}.{name}": value.get("value")
            for name, value in entry.items()
            if isinstance(value, Mapping) and "value" in value
        }

    metrics = scores("test", report.get("metrics", {}))
    for name, entry in report.get("baselines", {}).items():
        metrics.update(scores(f"baseline.{name}", entry))
    champion = report.get("champion", {})
    if isinstance(champion, Mapping):
        metrics.update(scores("champion", champion))
    for key in ("f1_macro_margin_over_best_baseline", "f1_macro_margin_over_champion"):
        entry = report.get(key)
        if isinstance(entry, Mapping):
            metrics[key] = entry.get("value")
    return metrics


def log_evaluation_report(tracker: Tracker, report: Mapping[str, Any], folder: Path | None) -> None:
    tracker.log_metrics(evaluation_metrics(report))
    check = report.get("champion_check", {})
    if isinstance(check, Mapping) and "holds" in check:
        tracker.set_tags({"champion_check": check.get("message", check["holds"])})
    if folder is not None:
        tracker.log_artifacts(report_files(folder), EVALUATION_ARTIFACTS)


def read_json(path: Path) -> dict[str, Any] | None:
    """A report file's content, or None (with a warning) when it is missing or unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("cannot read %s for MLflow: %s", path, error)
        return None
    return document if isinstance(document, dict) else None
