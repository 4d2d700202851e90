"""Runs a :class:`~model_build.pipeline_spec.PipelineSpec` on this machine, step by step, as SageMaker would.

The order of the steps, their scripts, arguments, inputs and outputs, the conditions and their branches all
come from the spec; this module only knows how SageMaker executes each *kind* of step, one handler per kind
(:attr:`LocalRunner.handlers`; an unknown kind is an error). It is over 600 lines on purpose: the handlers
share one execution's state (the run folder, the step cache, the services a step declares, the registry), so
they are methods of one class, as SageMaker is one service for every kind of step:

- ``Processing``: inputs staged under ``/opt/ml/processing/input/...``, the script run with its arguments,
  each output folder published to the (local) S3 location of the execution; the services the step declares
  (the Feature Store) served on loopback while it runs;
- ``Training``: channels under ``/opt/ml/input/data/<channel>`` with ``SM_CHANNEL_*``, hyperparameters as
  ``--name value``, ``SM_MODEL_DIR`` packed into ``model.tar.gz``, the metric regexes applied to its log;
- ``Tuning``: a training step, or with ``max_jobs`` above 0 a seeded search (:mod:`pipelines.runners.tuning`)
  whose trials are training runs of their own; the best trial's model is the step's;
- ``Condition``: every check's ``JsonGet`` compared with its right-hand value; the branch taken decides which
  of the branch steps listed after it run (the others are recorded as not run);
- ``RegisterModel``: a new version in the local Model Registry; ``Fail``: the execution fails with the step's
  message.

Processing and training steps are cached (:mod:`pipelines.local.cache`); each execution is recorded
(:mod:`pipelines.local.executions`).
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from model_build import parameters
from model_build.code_upload import CodeSet
from model_build.pipeline_spec import (
    BUNDLED_MODEL,
    CHAMPION_PARAMETER,
    CHAMPION_URL_PARAMETER,
    EXIT_MESSAGE,
    EXPERIMENT_TRACKING,
    FEATURE_STORE,
    MLFLOW_RUN_PARAMETER,
    MODEL_ARCHIVE,
    PIPELINE,
    RESOURCE_CONFIG,
    STEPS_SOURCE_DIR,
    ConditionStep,
    Config,
    FailStep,
    JobStep,
    JsonValue,
    Param,
    ParameterValue,
    PipelineSpec,
    ProcessingStep,
    RegisterStep,
    StepOutput,
    TrainingStep,
    TuningStep,
    Value,
)
from model_build.steps import diagnostics, tracking
from model_build.steps.champion import NO_CHAMPION
from model_build.storage_layout import checkpoint_path
from pipelines.local import container
from pipelines.local.cache import CacheEntry, StepCache, cache_key, content_hash
from pipelines.local.events import EventLog, Subscriber
from pipelines.local.executions import ExecutionRecord, ExecutionStore, Status, StepRecord, now
from pipelines.local.feature_store import FeatureStore
from pipelines.local.feature_store_server import ENDPOINT_ENV, serve
from pipelines.local.registry import Champion, Lineage, ModelRegistry
from pipelines.local.workspace import LOCAL_ACCOUNT, REPO_ROOT, Workspace
from pipelines.runners import tuning

TRAINING_HOST = "algo-1"

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


OFFLINE_VARIABLE = "HF_HUB_OFFLINE"


class StepFailed(Exception):
    """A step failed; the execution stops and is marked Failed with this reason."""


class Interrupted(BaseException):
    """The runner got SIGINT or SIGTERM; like KeyboardInterrupt, not an ``Exception`` a step may swallow."""


@dataclass
class _Execution:
    """What the steps of one execution share."""

    record: ExecutionRecord
    values: dict[str, ParameterValue]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    """Step name -> output name -> S3 URI."""
    input_hashes: dict[str, str] = field(default_factory=dict)
    """Content hash of each external input, by parameter name (InputDataUrl): the registry's lineage."""
    tracker: tracking.Tracker = field(default_factory=tracking.Tracker)
    """The execution's MLflow run in the run folder's store (off when it could not be created)."""

    @property
    def id(self) -> str:
        return self.record.id


@dataclass(frozen=True)
class _TrainingRun:
    """A finished training job: its container folder (model and output inside), metric series and log."""

    folder: container.ContainerFolder
    series: dict[str, list[float]]
    log: Path


class LocalRunner:
    """Executes the pipeline in a run folder. One runner may run several executions, one at a time."""

    def __init__(
        self,
        workspace: Workspace,
        spec: PipelineSpec = PIPELINE,
        *,
        repo_root: Path = REPO_ROOT,
        use_cache: bool = True,
        console: IO[str] | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> None:
        """``subscribers`` get the registry's events (the command line gives the local rollout)."""
        self.workspace = workspace
        self.subscribers = tuple(subscribers)
        self.spec = spec
        self.repo_root = repo_root
        self.steps_dir = repo_root / STEPS_SOURCE_DIR
        self._requirements = tuple(
            name for name in ("requirements.txt",) if (self.steps_dir / name).is_file()
        )
        self.use_cache = use_cache
        self.console = console or sys.stdout
        self.executions = ExecutionStore(workspace.executions_dir)
        self.cache = StepCache(workspace.cache_dir)

    # ------------------------------------------------------------------------------------------- running
    @property
    def handlers(self) -> dict[str, Callable[[_Execution, Any], tuple[str, ...] | None]]:
        """Step kind -> the method that runs a step of that kind (a condition's returns its branch)."""
        return {
            ProcessingStep.kind: self._run_processing,
            TrainingStep.kind: self._run_training,
            TuningStep.kind: self._run_tuning,
            ConditionStep.kind: self._run_condition,
            RegisterStep.kind: self._run_register,
            FailStep.kind: self._run_fail,
        }

    def run(self, overrides: Mapping[str, ParameterValue] | None = None) -> ExecutionRecord:
        """Run every step; returns the record, Succeeded or Failed. Interruptions are re-raised after the
        record says Failed, so the caller can exit with the signal's status."""
        values = self._with_champion(parameters.resolve(self.spec, overrides or {}, local=True))
        record = self.executions.create(self.workspace.config.pipeline_name, values)
        execution = _Execution(record, values)
        total = len(self.spec.steps)
        self._say(
            f"Pipeline {record.pipeline}, execution {record.id}\n"
            f"  run folder {self.workspace.root}, record {self.executions.folder(record.id) / 'execution.json'}"
        )
        execution.tracker = self._start_tracking(record)
        with _signals_raise_interrupted():
            try:
                taken: set[str] = set()
                for number, step in enumerate(self.spec.steps, start=1):
                    owner = self.spec.condition_of(step.name)
                    if owner is not None and step.name not in taken:
                        execution.record.skipped.append(step.name)
                        continue  # in a branch its condition did not take (or that never ran)
                    self._say(
                        f"\n[{number}/{total}] {step.name}: {getattr(step, 'description', '') or step.kind}"
                    )
                    branch = self.handlers[step.kind](execution, step)
                    taken.update(branch or ())
                self._finish(execution, Status.SUCCEEDED)
            except StepFailed as failure:
                self._finish(execution, Status.FAILED, str(failure))
            except (KeyboardInterrupt, Interrupted) as interruption:
                reason = f"interrupted ({interruption.args[0] if interruption.args else 'SIGINT'})"
                self._fail_running_steps(execution, reason)
                self._finish(execution, Status.FAILED, reason)
                raise
            except BaseException as error:
                reason = f"the local runner failed: {error!r}"
                self._fail_running_steps(execution, reason)
                self._finish(execution, Status.FAILED, reason)
                raise
        return record

    def _with_champion(self, values: dict[str, ParameterValue]) -> dict[str, ParameterValue]:
        """``values`` with the champion filled in, as ``run --sagemaker`` does before it starts an execution.

        Resolved once, at the start, and recorded with the execution's parameters: the run says which
        version it was compared with, and the evaluation's cache key changes when the champion does. Empty
        means find it (what prod serves, else the newest Approved version); ``none`` means go without; an
        ARN names a version of this registry, whose model is used unless ``ChampionModelUrl`` is given; a
        ``ChampionModelUrl`` alone is a model to compare with that is no registered version.
        """
        if CHAMPION_PARAMETER not in self.spec.parameter_names:
            return values
        arn = str(values[CHAMPION_PARAMETER]).strip()
        if arn.lower() == NO_CHAMPION:
            self._say(f"Champion: none ({CHAMPION_PARAMETER}=none): the champion check holds without one")
            return {**values, CHAMPION_PARAMETER: NO_CHAMPION, CHAMPION_URL_PARAMETER: ""}
        if not arn and values[CHAMPION_URL_PARAMETER]:
            self._say(
                f"Champion: the model {values[CHAMPION_URL_PARAMETER]} ({CHAMPION_URL_PARAMETER}, no version)"
            )
            return values
        from model_deploy.local.state import EndpointStore
        from model_deploy.stage_config import STAGES

        config = self.workspace.config
        group = config.model_package_group_name
        found: Champion | None
        with ModelRegistry(self.workspace.registry_path, config.region) as registry:
            if arn:
                package = registry.by_arn(group, arn)
                if package is None:
                    raise ValueError(
                        f"--param {CHAMPION_PARAMETER}={arn}: no such version in {group} "
                        f"({self.workspace.registry_path}); `python -m pipelines registry list` lists them, "
                        f"'none' runs without a champion"
                    )
                found = Champion(package, f"named by {CHAMPION_PARAMETER}")
            else:
                prod = (
                    EndpointStore(self.workspace.endpoints_dir).load().get(config.endpoint_name(STAGES[-1]))
                )
                found = registry.champion(group, prod.model_package_arn if prod else None)
        if found is None:
            self._say(
                "Champion: none yet (no version serves prod, none is Approved): the champion check holds"
            )
            return values
        package = found.package
        url = str(values[CHAMPION_URL_PARAMETER]) or package.model_data_url
        f1 = package.metric("f1_macro")
        self._say(
            f"Champion: version {package.version} ({found.reason}; test macro-F1 "
            f"{'n/a' if f1 is None else f'{f1:.4f}'} when it was registered)"
        )
        return {**values, CHAMPION_PARAMETER: package.arn, CHAMPION_URL_PARAMETER: url}

    def _start_tracking(self, record: ExecutionRecord) -> tracking.Tracker:
        """The execution's MLflow run: its parameters, the code's commit; its id becomes ``MlflowRunId``."""
        if MLFLOW_RUN_PARAMETER not in self.spec.parameter_names:
            return tracking.Tracker(reason=f"the pipeline has no {MLFLOW_RUN_PARAMETER} parameter")
        self.workspace.mlflow_dir.mkdir(parents=True, exist_ok=True)
        commit = _git_commit(self.repo_root)
        tracker = tracking.start_pipeline_run(
            self.workspace.mlflow_tracking_uri,
            self.workspace.config.mlflow_experiment_name,
            record.id,
            {
                name: parameters.render(value)
                for name, value in record.parameters.items()
                if name != MLFLOW_RUN_PARAMETER  # the run itself
            },
            {
                tracking.EXECUTION_TAG: record.id,
                tracking.PIPELINE_TAG: record.pipeline,
                **({tracking.GIT_COMMIT_TAG: commit} if commit else {}),
            },
            artifact_location=self.workspace.mlflow_artifacts_uri,
        )
        if tracker.active:
            record.parameters[MLFLOW_RUN_PARAMETER] = tracker.run_id
            self.executions.save(record)
            self._say(f"  MLflow run {tracker.run_id} (`python -m pipelines experiments` opens MLflow's UI)")
        else:
            self._say(f"  MLflow: not tracked ({tracker.reason})")
        return tracker

    def _tracking_environment(self, execution: _Execution, spec_step: JobStep) -> dict[str, str]:
        """What a job that declares experiment tracking needs to log into the execution's run."""
        run_id = execution.tracker.run_id if execution.tracker.active else None
        if EXPERIMENT_TRACKING not in spec_step.services or not run_id:
            return {}
        return {
            tracking.TRACKING_URI_VARIABLE: self.workspace.mlflow_tracking_uri,
            tracking.RUN_ID_VARIABLE: run_id,
        }

    def _finish(self, execution: _Execution, status: Status, reason: str | None = None) -> None:
        record = execution.record
        record.status, record.failure_reason, record.ended = status, reason, now()
        self.executions.save(record)
        if reason:
            execution.tracker.set_tags({"pipeline.failure_reason": reason})
        execution.tracker.end("FINISHED" if status == Status.SUCCEEDED else "FAILED")

    def _fail_running_steps(self, execution: _Execution, reason: str) -> None:
        for step in execution.record.steps:
            if step.status == Status.EXECUTING:
                step.finish(Status.FAILED, reason)

    def _start_step(self, execution: _Execution, name: str, step_type: str) -> StepRecord:
        step = StepRecord(name, step_type)
        execution.record.steps.append(step)
        self.executions.save(execution.record)
        return step

    def _end_step(
        self, execution: _Execution, step: StepRecord, status: Status, reason: str | None = None
    ) -> None:
        step.finish(status, reason)
        self.executions.save(execution.record)
        if status == Status.SUCCEEDED:
            cached = f" (cache hit: outputs of execution {step.cache_hit})" if step.cache_hit else ""
            self._say(f"  {step.name} succeeded in {step.duration_s:.1f}s{cached}")
        else:
            self._say(f"  {step.name} failed after {step.duration_s:.1f}s: {reason}")

    # ------------------------------------------------------------------------------------ job steps
    def _run_processing(self, execution: _Execution, step: ProcessingStep) -> None:
        self._run_job(execution, step, self._process)

    def _run_training(self, execution: _Execution, step: TrainingStep) -> None:
        self._run_job(execution, step, self._train)

    def _run_tuning(self, execution: _Execution, step: TuningStep) -> None:
        max_jobs = self._resolve(execution, step.max_jobs)
        if not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 0:
            raise StepFailed(
                f"{step.name}: the number of tuning jobs must be a whole number >= 0, got {max_jobs!r}"
            )
        self._run_job(execution, step, self._tune if max_jobs else self._train)

    def _run_job(
        self,
        execution: _Execution,
        spec_step: JobStep,
        run: Callable[[_Execution, Any, StepRecord, Mapping[str, Path]], None],
    ) -> None:
        """What every job kind shares: its inputs, the cache lookup, the run, the cache entry."""
        step = self._start_step(execution, spec_step.name, spec_step.kind)
        step.detail["retry_policies"] = [policy.request() for policy in spec_step.retries]
        try:
            sources = self._input_sources(execution, spec_step)
            request = self._cache_request(execution, spec_step, sources)
            step.cache_key = cache_key(request)
            hit = self.cache.lookup(spec_step.name, step.cache_key, self._exists) if self.use_cache else None
            if hit is not None:
                step.cache_hit, step.outputs = hit.execution_id, hit.outputs
                step.metrics = self._cached_metrics(hit)
                if EXPERIMENT_TRACKING in spec_step.services:  # its job did not log: its reports are reused
                    folders = [self.workspace.local_path(uri) for uri in step.outputs.values()]
                    tracking.cached_step_reports(execution.tracker, (f for f in folders if f.is_dir()))
            else:
                run(execution, spec_step, step, sources)
                self.cache.store(
                    CacheEntry(spec_step.name, step.cache_key, execution.id, step.outputs, now())
                )
        except (StepFailed, container.StepProcessError, FileNotFoundError, ValueError) as error:
            self._end_step(execution, step, Status.FAILED, str(error))
            raise StepFailed(f"{spec_step.name} failed: {error}") from None
        execution.outputs[spec_step.name] = step.outputs
        source = f"cache hit of {step.cache_hit}" if step.cache_hit else "ran"
        execution.tracker.set_tags({f"{tracking.STEP_TAG_PREFIX}{spec_step.name}": source})
        execution.tracker.log_params(
            {f"data.{name}.sha256": digest for name, digest in execution.input_hashes.items()}
        )
        self._end_step(execution, step, Status.SUCCEEDED)

    def _input_sources(self, execution: _Execution, step: JobStep) -> dict[str, Path]:
        """Input name (or channel) -> the local file or folder it comes from."""
        sources = {}
        for name, value in step.data_inputs():
            path = self._local_data(execution, value, f"{step.name} input {name!r}")
            if isinstance(value, Param) and self.spec.parameter(value.name).input_data:
                execution.input_hashes[value.name] = content_hash(path)
            sources[name] = path
        return sources

    def _local_data(self, execution: _Execution, value: Value, what: str) -> Path:
        if isinstance(value, StepOutput):
            uri = self._step_output(execution, value)
        else:
            uri = str(self._resolve(execution, value))
            if isinstance(value, Param) and uri == "" and self.spec.parameter(value.name).input_data:
                uri = self.workspace.raw_reviews_uri  # as on AWS: empty means the data bucket's raw prefix
        if uri.startswith("s3://"):
            path = self.workspace.local_path(uri)
            if not path.exists():
                raise FileNotFoundError(f"{what}: {uri} (the local folder {path}) does not exist")
            return path
        path = Path(uri) if Path(uri).is_absolute() else self.repo_root / uri
        if not path.exists():
            raise FileNotFoundError(f"{what}: {path} does not exist")
        return path

    def _cache_request(
        self, execution: _Execution, step: JobStep, sources: Mapping[str, Path]
    ) -> dict[str, Any]:
        """What the step's result depends on: its settings, its inputs' content and its code."""
        settings: dict[str, Any] = {name: self._render(execution, v) for name, v in step.settings().items()}
        if isinstance(step, ProcessingStep):
            settings["destinations"] = {i.name: i.destination for i in step.inputs}
        return {
            "step": step.name,
            "script": step.script,
            "settings": settings,
            "instance_type": self._render(execution, step.instance_type),
            "instance_count": self._render(execution, step.instance_count),
            "inputs": {name: content_hash(path) for name, path in sorted(sources.items())},
            # As on SageMaker: the script, the step modules it imports and the requirements, so editing
            # train.py reruns training and evaluation but reuses processing.
            "code": CodeSet.script(self.steps_dir, step.script, self._requirements).digest,
        }

    def _cached_metrics(self, hit: CacheEntry) -> dict[str, float]:
        try:
            source = self.executions.load(hit.execution_id)
            return next(s.metrics for s in source.steps if s.name == hit.step)
        except (LookupError, StopIteration):
            return {}

    def _exists(self, uri: str) -> bool:
        return self.workspace.local_path(uri).exists()

    def _process(
        self,
        execution: _Execution,
        spec_step: ProcessingStep,
        step: StepRecord,
        sources: Mapping[str, Path],
    ) -> None:
        """Run the job's instances one after the other, each in a container folder of its own.

        Like SageMaker, every instance gets the inputs as declared and ``resourceconfig.json`` naming it among
        the job's hosts; its outputs are then uploaded into the step's output prefix, which all of them share
        (the script names its files so that instances never collide).
        """
        hosts = processing_hosts(self._resolve(execution, spec_step.instance_count))
        environment = self._base_environment()
        environment.update({name: self._render(execution, v) for name, v in spec_step.environment.items()})
        environment.update(self._tracking_environment(execution, spec_step))
        with self._feature_store() if FEATURE_STORE in spec_step.services else nullcontext() as server:
            if server is not None:
                environment.update(_feature_store_client_environment(server.endpoint_url, self.workspace))
            for host in hosts:
                work = spec_step.name if len(hosts) == 1 else f"{spec_step.name}-{host}"
                folder = container.ContainerFolder(self._work_dir(execution, work))
                for processing_input in spec_step.inputs:
                    container.stage(sources[processing_input.name], folder.path(processing_input.destination))
                for output in spec_step.outputs:
                    folder.path(output.source).mkdir(parents=True, exist_ok=True)
                config = folder.path(RESOURCE_CONFIG)
                config.parent.mkdir(parents=True, exist_ok=True)
                config.write_text(json.dumps({"current_host": host, "hosts": hosts}))
                arguments = [
                    part
                    for flag, value in spec_step.arguments.items()
                    for part in (flag, folder.map(self._render(execution, value)))
                ]
                if len(hosts) > 1:
                    self._say(f"  instance {host} of {len(hosts)}")
                try:
                    self._run_script(execution, spec_step.script, arguments, environment, step, log_name=work)
                except container.StepProcessError as error:
                    raise _with_exit_message(error, folder.path(EXIT_MESSAGE)) from None
                for output in spec_step.outputs:
                    uri = self.workspace.step_output_uri(execution.id, spec_step.name, output.name)
                    _publish(
                        folder.path(output.source), self.workspace.local_path(uri), merge=host != hosts[0]
                    )
                    step.outputs[output.name] = uri
                container.remove_tree(folder.root)
        if server is not None:
            step.detail["feature_store_records_ingested"] = server.ingested
        if len(hosts) > 1:
            step.detail["instance_logs"] = [
                str(self._log_path(execution, f"{spec_step.name}-{host}")) for host in hosts
            ]

    def _train(
        self,
        execution: _Execution,
        spec_step: TrainingStep,
        step: StepRecord,
        sources: Mapping[str, Path],
    ) -> None:
        self._note_single_instance(execution, spec_step.instance_count, "training")
        hyperparameters = {name: self._render(execution, v) for name, v in spec_step.hyperparameters.items()}
        checkpoints = self._checkpoint_dir(execution, spec_step, "")
        step.log = str(self._log_path(execution, spec_step.name))
        self.executions.save(execution.record)  # the log is readable while the job runs
        run = self._fit(
            execution,
            spec_step,
            sources,
            hyperparameters,
            checkpoints,
            spec_step.name,
            on_verdict=lambda verdict: self._record_verdict(execution, step, verdict),
        )
        self._publish_training(execution, spec_step, step, run)

    def _record_verdict(
        self, execution: _Execution, step: StepRecord, verdict: diagnostics.Verdict, trial: str = ""
    ) -> None:
        """A training diagnostic's verdict, as the job printed it: kept in the record as it comes."""
        entry = {**vars(verdict), **({"trial": trial} if trial else {})}
        step.detail.setdefault("diagnostics", []).append(entry)
        self.executions.save(execution.record)

    def _tune(
        self,
        execution: _Execution,
        spec_step: TuningStep,
        step: StepRecord,
        sources: Mapping[str, Path],
    ) -> None:
        """The search: each trial a training run of its own (folder, log, checkpoints), the best one published."""
        self._note_single_instance(execution, spec_step.instance_count, "training")
        base = {name: self._render(execution, v) for name, v in spec_step.hyperparameters.items()}
        max_jobs = int(self._resolve(execution, spec_step.max_jobs))
        cores = os.cpu_count() or 1
        parallel = max(1, min(int(self._resolve(execution, spec_step.max_parallel_jobs)), cores, max_jobs))
        # Trials side by side share the cores instead of each starting a thread per core.
        threads = {"OMP_NUM_THREADS": str(max(1, cores // parallel))} if parallel > 1 else {}
        runs: dict[int, _TrainingRun] = {}
        self._say(
            f"  tuning: {max_jobs} trials, {parallel} at a time, maximizing {spec_step.objective}; "
            f"searching {', '.join(r.hyperparameter for r in spec_step.ranges)}"
        )

        def fit(number: int, drawn: dict[str, str], cancel: threading.Event) -> dict[str, list[float]]:
            name = f"{spec_step.name}-trial-{number:02d}"
            checkpoints = self._checkpoint_dir(execution, spec_step, f"trial-{number:02d}")
            try:
                runs[number] = self._fit(
                    execution,
                    spec_step,
                    sources,
                    {**base, **drawn},
                    checkpoints,
                    name,
                    {**threads, tracking.TRIAL_VARIABLE: name},
                    cancel,
                    on_verdict=lambda verdict: self._record_verdict(execution, step, verdict, name),
                )
            except BaseException:
                container.remove_tree(self.executions.folder(execution.id) / "work" / name)  # its log stays
                raise
            return runs[number].series

        try:
            trials = tuning.search(
                spec_step.ranges,
                spec_step.objective,
                max_jobs,
                parallel,
                int(self._resolve(execution, spec_step.random_seed)),
                fit,
                self.console,
            )
        except tuning.NoTrialSucceeded as error:
            raise StepFailed(str(error)) from None
        finally:
            logs = self.executions.folder(execution.id) / "logs"
            step.detail["trial_logs"] = sorted(
                str(path) for path in logs.glob(f"{spec_step.name}-trial-*.log")
            )
        chosen = tuning.best(trials)
        step.detail["trials"] = [trial.as_record() for trial in trials]
        step.detail["best_trial"] = chosen.number
        step.detail["best_hyperparameters"] = chosen.hyperparameters
        self._say(tuning.summary(trials, spec_step.objective))
        for number, run in runs.items():
            if number != chosen.number:
                container.remove_tree(run.folder.root)
        step.log = str(runs[chosen.number].log)
        self._publish_training(execution, spec_step, step, runs[chosen.number])

    def _checkpoint_dir(self, execution: _Execution, spec_step: TrainingStep, trial: str) -> Path | None:
        """As SageMaker's CheckpointConfig: ``<artifacts>/<pipeline prefix>/checkpoints/<execution id>``."""
        if not spec_step.checkpoints:
            return None
        prefix = "/".join(checkpoint_path(self.workspace.config, execution.id))
        folder = self.workspace.local_path(f"s3://{self.workspace.artifacts_bucket}/{prefix}")
        return folder / trial if trial else folder

    def _fit(
        self,
        execution: _Execution,
        spec_step: TrainingStep,
        sources: Mapping[str, Path],
        hyperparameters: Mapping[str, str],
        checkpoints: Path | None,
        name: str,
        extra_environment: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
        on_verdict: Callable[[diagnostics.Verdict], None] = lambda verdict: None,
    ) -> _TrainingRun:
        """One training job in a container folder of its own; its metric series from the spec's regexes.

        A run with ``cancel`` is a trial beside others: its output goes to its log only, not the console.
        """
        folder = container.ContainerFolder(self._work_dir(execution, name))
        environment = {
            **self._base_environment(),
            **{name: self._render(execution, value) for name, value in spec_step.environment.items()},
            **self._tracking_environment(execution, spec_step),
            **(extra_environment or {}),
        }
        for channel in spec_step.channels:
            channel_dir = folder.path(f"/opt/ml/input/data/{channel}")
            container.stage(sources[channel], channel_dir)
            environment[f"SM_CHANNEL_{channel.upper()}"] = str(channel_dir)
        model_dir, output_dir = folder.path("/opt/ml/model"), folder.path("/opt/ml/output")
        for path in (model_dir, output_dir / "data"):
            path.mkdir(parents=True, exist_ok=True)
        environment.update(
            SM_MODEL_DIR=str(model_dir),
            SM_OUTPUT_DIR=str(output_dir),
            SM_OUTPUT_DATA_DIR=str(output_dir / "data"),
            SM_INPUT_DIR=str(folder.path("/opt/ml/input")),
            SM_CHANNELS=json.dumps(sorted(spec_step.channels)),
            SM_HPS=json.dumps(dict(hyperparameters)),
            SM_HOSTS=json.dumps([TRAINING_HOST]),
            SM_CURRENT_HOST=TRAINING_HOST,
            SM_NUM_GPUS="0",
            SM_NUM_CPUS=str(os.cpu_count() or 1),
            SM_USER_ENTRY_POINT=spec_step.script,
        )
        # SageMaker's CheckpointConfig creates /opt/ml/checkpoints and syncs it to S3; here the script is told
        # where the execution's checkpoint folder is, in the same place in the artifacts bucket.
        arguments = [part for name, value in hyperparameters.items() for part in (f"--{name}", value)]
        if checkpoints is not None:
            arguments += ["--checkpoint-dir", str(checkpoints)]
        patterns = [(metric, _compile(regex)) for metric, regex in spec_step.metric_definitions]
        series: dict[str, list[float]] = {}

        def collect(line: str) -> None:
            for metric, pattern in patterns:
                if match := pattern.search(line):
                    series.setdefault(metric, []).append(float(match.group(1)))
            if (verdict := diagnostics.parse_line(line)) is not None:
                on_verdict(verdict)

        log = self._log_path(execution, name)
        run = container.ScriptRun(
            self.steps_dir / spec_step.script, arguments, self.steps_dir, environment, log
        )
        console: Any = (
            _Discard() if cancel else getattr(self.console, "buffer", None) or _TextToBytes(self.console)
        )
        container.run_script(run, console, collect, cancel=cancel)
        return _TrainingRun(folder, series, log)

    def _publish_training(
        self, execution: _Execution, spec_step: TrainingStep, step: StepRecord, run: _TrainingRun
    ) -> None:
        """``SM_MODEL_DIR`` as ``model.tar.gz`` and the output data beside it, as SageMaker uploads them."""
        step.metrics = {name: values[-1] for name, values in run.series.items()}
        step.detail["metric_series"] = run.series
        output_prefix = self.workspace.step_output_uri(execution.id, spec_step.name, "output")
        model_dir, output_dir = run.folder.path("/opt/ml/model"), run.folder.path("/opt/ml/output")
        container.pack_model(model_dir, self.workspace.local_path(f"{output_prefix}/{MODEL_ARCHIVE}"))
        # SageMaker uploads SM_OUTPUT_DATA_DIR as output.tar.gz; locally it stays a folder of viewable files.
        _publish(output_dir / "data", self.workspace.local_path(f"{output_prefix}/data"))
        step.outputs = {"model": f"{output_prefix}/{MODEL_ARCHIVE}", "output": f"{output_prefix}/data"}
        container.remove_tree(run.folder.root)

    def _run_script(
        self,
        execution: _Execution,
        script: str,
        arguments: list[str],
        environment: dict[str, str],
        step: StepRecord,
        on_line: Callable[[str], None] = lambda line: None,
        log_name: str = "",
    ) -> None:
        log_path = self._log_path(execution, log_name or step.name)
        step.log = str(log_path)
        self.executions.save(execution.record)
        run = container.ScriptRun(self.steps_dir / script, arguments, self.steps_dir, environment, log_path)
        console: Any = getattr(self.console, "buffer", None) or _TextToBytes(self.console)
        container.run_script(run, console, on_line)

    def _log_path(self, execution: _Execution, name: str) -> Path:
        """Where a job's (or a job instance's, or a trial's) output is kept: ``<execution>/logs/<name>.log``."""
        return self.executions.folder(execution.id) / "logs" / f"{name}.log"

    def _base_environment(self) -> dict[str, str]:
        """This process's environment, offline for the Hugging Face hub unless the user said otherwise: the
        local mode needs no network, and a model name that is not a folder fails at once rather than after a
        minute of retries (``HF_HUB_OFFLINE=0`` lets a run download one, such as ``roberta-base``)."""
        return {OFFLINE_VARIABLE: "1", **os.environ}

    def _work_dir(self, execution: _Execution, step: str) -> Path:
        folder = self.executions.folder(execution.id) / "work" / step
        if folder.exists():
            container.remove_tree(folder)
        folder.mkdir(parents=True)
        return folder

    def _note_single_instance(self, execution: _Execution, count: Value, kind: str) -> None:
        instances = self._resolve(execution, count)
        if isinstance(instances, int) and instances > 1:
            self._say(f"  note: {instances} {kind} instances requested; the local mode runs one.")

    @contextmanager
    def _feature_store(self) -> Iterator[Any]:
        store = FeatureStore(self.workspace.offline_store_root)
        with serve(store, self.workspace.config.feature_group_name) as server:
            self._say(f"  Feature Store runtime stand-in on {server.endpoint_url}")
            yield server

    # ------------------------------------------------------------------------------------ condition
    def _run_condition(self, execution: _Execution, condition: ConditionStep) -> tuple[str, ...]:
        step = self._start_step(execution, condition.name, condition.kind)
        results = []
        try:
            for check in condition.checks:
                left = self._json_get(execution, check.left)
                right = self._resolve(execution, check.right)
                results.append(
                    {
                        "check": check.name,
                        "json_path": check.left.json_path,
                        "left": left,
                        "operator": check.operator,
                        "right": right,
                        # A null (a metric the evaluation could not compute) fails its check: never a pass.
                        "outcome": left is not None and _OPERATORS[check.operator](left, right),
                    }
                )
        except StepFailed as failure:
            self._end_step(execution, step, Status.FAILED, str(failure))
            raise
        outcome = all(result["outcome"] for result in results)
        step.detail = {"checks": results, "outcome": outcome}
        for result in results:
            verdict = "holds" if result["outcome"] else "FAILS"
            self._say(
                f"  {result['check']}: {result['json_path']} = {parameters.shown(result['left'])} "
                f"{result['operator']} {parameters.shown(result['right'])}: {verdict}"
            )
        self._end_step(execution, step, Status.SUCCEEDED)
        return condition.if_true if outcome else condition.if_false

    def _json_get(self, execution: _Execution, value: JsonValue) -> Any:
        """``JsonGet(step, property file, json path)``: read the file the step wrote, then the path in it."""
        try:
            property_file = self.spec.property_file(value)
        except KeyError as error:
            raise StepFailed(str(error.args[0])) from None
        folder = self.workspace.local_path(execution.outputs[value.step][property_file.output])
        path = folder / property_file.path
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise StepFailed(f"cannot read the property file {path}: {error}") from None
        found: Any = document
        for key in value.json_path.split("."):
            if not isinstance(found, dict) or key not in found:
                raise StepFailed(f"{path} has no {value.json_path!r} (missing {key!r})")
            found = found[key]
        return found

    # ------------------------------------------------------------------------------------ branches
    def _run_register(self, execution: _Execution, register: RegisterStep) -> None:
        step = self._start_step(execution, register.name, register.kind)
        report_uri = f"{self._step_output(execution, register.metrics_report)}/{register.metrics_file}"
        config = self.workspace.config
        input_parameter = next(iter(execution.input_hashes), None)
        lineage = Lineage(
            execution_id=execution.id,
            execution_arn=(
                f"arn:aws:sagemaker:{config.region}:{LOCAL_ACCOUNT}:pipeline/{config.pipeline_name}"
                f"/execution/{execution.id}"
            ),
            parameters={name: parameters.render(value) for name, value in execution.values.items()},
            input_data_url=str(execution.values.get(input_parameter, "")) if input_parameter else "",
            input_data_sha256=execution.input_hashes.get(input_parameter, "") if input_parameter else "",
            code_sha256=content_hash(self.steps_dir),
            git_commit=_git_commit(self.repo_root),
            mlflow_run_id=execution.tracker.run_id if execution.tracker.active else None,
            **self._data_report(execution, register),
        )
        with ModelRegistry(
            self.workspace.registry_path, config.region, EventLog(self.workspace, self.subscribers)
        ) as registry:
            package = registry.register(
                str(self._resolve(execution, register.model_package_group)),
                self._model_data(execution, register),
                lineage,
                approval_status=str(self._resolve(execution, register.approval_status)),
                content_types=register.content_types,
                response_types=register.response_types,
                inference_instance_types=[str(self._resolve(execution, register.inference_instance_type))],
                metrics=json.loads(self.workspace.local_path(report_uri).read_text()),
                metrics_report_uri=report_uri,
                description=register.description,
            )
        step.detail = {
            "ModelPackageArn": package.arn,
            "ModelPackageVersion": package.version,
            "ModelApprovalStatus": str(package.approval_status),
        }
        self._say(f"  registered {package.arn} ({package.approval_status})")
        # The run names the version, and the model (its model.tar.gz) is a logged model of the run.
        execution.tracker.set_tags(
            {tracking.MODEL_PACKAGE_ARN_TAG: package.arn, tracking.MODEL_VERSION_TAG: package.version}
        )
        execution.tracker.log_model_link(
            package.group, package.model_data_url, {tracking.MODEL_PACKAGE_ARN_TAG: package.arn}
        )
        self._end_step(execution, step, Status.SUCCEEDED)

    def _model_data(self, execution: _Execution, register: RegisterStep) -> str:
        """The registered artifact's URI: the step output itself, or ``model_file`` inside it."""
        output = self._step_output(execution, register.model)
        return f"{output}/{register.model_file}" if register.model_file else output

    def _data_report(self, execution: _Execution, register: RegisterStep) -> dict[str, Any]:
        """The data check's report URI and its figures, as the registry's lineage holds them."""
        if register.data_report is None:
            return {}
        uri = f"{self._step_output(execution, register.data_report)}/{register.data_report_file}"
        report = json.loads(self.workspace.local_path(uri).read_text())
        figures = {}
        for key, json_path in register.data_report_metadata:
            found: Any = report
            for part in json_path.split("."):
                found = found.get(part) if isinstance(found, dict) else None
            figures[key] = parameters.render(found) if found is not None else ""
        return {"data_report_uri": uri, "data_check": figures}

    def _run_fail(self, execution: _Execution, fail: FailStep) -> None:
        step = self._start_step(execution, fail.name, fail.kind)
        message = "".join(self._message_part(execution, part) for part in fail.message)
        self._end_step(execution, step, Status.FAILED, message)
        raise StepFailed(message)

    def _message_part(self, execution: _Execution, part: Value | JsonValue | str) -> str:
        if isinstance(part, JsonValue):
            return parameters.shown(self._json_get(execution, part))
        return parameters.render(self._resolve(execution, part))

    # ------------------------------------------------------------------------------------ values
    def _resolve(self, execution: _Execution, value: Value) -> ParameterValue:
        if isinstance(value, Param):
            resolved = execution.values[value.name]
            if self.spec.parameter(value.name).model_artifact and str(resolved).startswith("s3://"):
                return str(self.workspace.local_path(str(resolved)))  # the job fetches it: hand it the file
            return str(_bundled_model_dir()) if resolved == BUNDLED_MODEL else resolved
        if isinstance(value, Config):
            return getattr(self.workspace.config, value.attribute)
        if isinstance(value, StepOutput):
            return self._step_output(execution, value)
        return value

    def _render(self, execution: _Execution, value: Value) -> str:
        return parameters.render(self._resolve(execution, value))

    def _step_output(self, execution: _Execution, reference: StepOutput) -> str:
        try:
            return execution.outputs[reference.step][reference.output]
        except KeyError:
            raise StepFailed(f"step {reference.step} has no output {reference.output!r} (yet)") from None

    # ------------------------------------------------------------------------------------ output
    def _say(self, text: str) -> None:
        print(text, file=self.console, flush=True)


def _publish(source: Path, destination: Path, merge: bool = False) -> None:
    """Move a finished output folder into its S3 location (a rename: same disk, nothing half-copied).

    ``merge``: another instance of the same job has published there already; add this one's files to its
    (as two uploads into one S3 prefix do: a file of the same name would be overwritten).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if merge and destination.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                target = destination / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
        return
    if destination.exists():
        shutil.rmtree(destination)
    shutil.move(source, destination)


def processing_hosts(count: object) -> list[str]:
    """SageMaker's names for a processing job's instances: ``algo-1`` to ``algo-<count>``."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"ProcessingInstanceCount must be a whole number of at least 1, got {count!r}")
    return [f"algo-{number}" for number in range(1, count + 1)]


def _with_exit_message(error: container.StepProcessError, message_file: Path) -> container.StepProcessError:
    """The job's own account of its failure (SageMaker's ``ExitMessage``) instead of its last log lines."""
    try:
        message = message_file.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return error
    first_line = str(error).splitlines()[0]
    return container.StepProcessError(f"{first_line}\n  " + "\n  ".join(message.splitlines()))


def _feature_store_client_environment(endpoint_url: str, workspace: Workspace) -> dict[str, str]:
    """What boto3 in the processing step needs to reach the stand-in: its URL, a region, dummy credentials."""
    return {
        ENDPOINT_ENV: endpoint_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_DEFAULT_REGION": workspace.config.region,
        "AWS_REGION": workspace.config.region,
    }


def _bundled_model_dir() -> Path:
    from pipelines.models import bundled_model_dir

    return bundled_model_dir()


def _compile(regex: str) -> Any:
    import re

    return re.compile(regex)


def _git_commit(repo_root: Path) -> str | None:
    """HEAD's commit, with ``-dirty`` when tracked files differ from it; None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


class _Discard:
    """Where a trial's output goes besides its log: nowhere (trials side by side would interleave)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


class _TextToBytes:
    """A text console (e.g. a test's StringIO) seen as the byte stream a script's output is copied to."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text

    def write(self, data: bytes) -> int:
        self._text.write(data.decode("utf-8", errors="replace"))
        return len(data)

    def flush(self) -> None:
        self._text.flush()


@contextmanager
def _signals_raise_interrupted() -> Iterator[None]:
    """SIGTERM (a killed job, ``timeout``) becomes an exception, so the record is closed as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
