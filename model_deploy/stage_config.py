"""Per-stage deployment settings, read from ``model_deploy/stages/<stage>.json``.

One file per stage (``staging``, ``prod``) holds everything that differs between them: the instances, the
autoscaling bounds, how much traffic is captured, how an update shifts traffic and when it rolls back, and how
the serving container batches. The AWS deploy (the endpoint construct that ``python -m model_deploy render``
synthesizes) and the local endpoints (``python -m pipelines endpoints``) read the same files, so a stage is
configured once for both.

A bad file is refused with the file, the key and what is wrong; unknown keys are refused too, since a
misspelled key that is silently ignored is a setting nobody applied.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from model_build.steps.monitoring_thresholds import DriftThresholds

STAGES_DIR = Path(__file__).parent / "stages"
STAGES = ("staging", "prod")
"""The rollout order: an approved version goes to staging, and to prod only after the manual gate."""

TrafficRouting = Literal["ALL_AT_ONCE", "CANARY", "LINEAR"]
Backend = Literal["auto", "onnx", "pytorch"]


class StageConfigError(ValueError):
    """A stage file that cannot be used: the message names the file and the key."""


@dataclass(frozen=True)
class EndpointSettings:
    instance_type: str
    initial_instance_count: int

    def check(self) -> list[str]:
        problems = []
        if not self.instance_type.startswith("ml."):
            problems.append(f"instance_type {self.instance_type!r} is not a SageMaker instance type (ml.*)")
        if self.initial_instance_count < 1:
            problems.append("initial_instance_count must be at least 1")
        return problems


@dataclass(frozen=True)
class AutoscalingSettings:
    """Target tracking on ``SageMakerVariantInvocationsPerInstance`` (invocations per instance per minute)."""

    min_instances: int
    max_instances: int
    target_invocations_per_instance: int
    scale_in_cooldown_seconds: int = 300
    scale_out_cooldown_seconds: int = 60

    def check(self) -> list[str]:
        problems = []
        if not 1 <= self.min_instances <= self.max_instances:
            problems.append(
                f"min_instances ({self.min_instances}) must be at least 1 and at most max_instances "
                f"({self.max_instances})"
            )
        if self.target_invocations_per_instance < 1:
            problems.append("target_invocations_per_instance must be at least 1")
        return problems


@dataclass(frozen=True)
class DataCaptureSettings:
    sampling_percentage: int

    def check(self) -> list[str]:
        if not 0 <= self.sampling_percentage <= 100:
            return [f"sampling_percentage {self.sampling_percentage} is not within 0-100"]
        return []


@dataclass(frozen=True)
class DeploymentSettings:
    """A blue/green update (SageMaker deployment guardrails): how traffic moves and how long it bakes."""

    traffic_routing: TrafficRouting
    canary_size_percent: int
    wait_seconds: int
    termination_wait_seconds: int
    maximum_execution_timeout_seconds: int

    def check(self) -> list[str]:
        problems = []
        if self.traffic_routing not in typing.get_args(TrafficRouting):
            problems.append(
                f"traffic_routing {self.traffic_routing!r} is not one of {', '.join(typing.get_args(TrafficRouting))}"
            )
        if self.traffic_routing == "CANARY" and not 1 <= self.canary_size_percent <= 50:
            problems.append("canary_size_percent must be within 1-50 (SageMaker's limit for a canary)")
        if self.traffic_routing == "LINEAR" and not 10 <= self.canary_size_percent <= 50:
            problems.append("canary_size_percent is the linear step size: within 10-50")
        if not 0 <= self.wait_seconds <= 3600:
            problems.append("wait_seconds must be within 0-3600")
        if not 0 <= self.termination_wait_seconds <= 3600:
            problems.append("termination_wait_seconds must be within 0-3600")
        if not 600 <= self.maximum_execution_timeout_seconds <= 28800:
            problems.append("maximum_execution_timeout_seconds must be within 600-28800")
        elif self.maximum_execution_timeout_seconds <= self.wait_seconds + self.termination_wait_seconds:
            problems.append(
                "maximum_execution_timeout_seconds must exceed wait_seconds + termination_wait_seconds"
            )
        return problems


@dataclass(frozen=True)
class AlarmSettings:
    """The CloudWatch alarms that roll an update back (and page someone after it)."""

    max_invocation_5xx_errors: int
    max_model_latency_ms: int
    period_seconds: int = 60
    evaluation_periods: int = 2

    def check(self) -> list[str]:
        problems = []
        if self.max_invocation_5xx_errors < 0:
            problems.append("max_invocation_5xx_errors must not be negative")
        if self.max_model_latency_ms < 1:
            problems.append("max_model_latency_ms must be at least 1")
        if self.period_seconds not in (10, 30) and self.period_seconds % 60:
            problems.append("period_seconds must be 10, 30 or a multiple of 60 (CloudWatch's periods)")
        if self.evaluation_periods < 1:
            problems.append("evaluation_periods must be at least 1")
        return problems


@dataclass(frozen=True)
class ServingSettings:
    """How the model server batches (requests that arrive together share one forward pass), and what runs it.

    ``backend`` is the handler's ``INFERENCE_BACKEND`` (``model_deploy/serving/inference.py``): ``auto`` serves
    the package's int8 ONNX model with ONNX Runtime on CPU instances when the package carries it (the evaluation
    step adds it only when it answers like the PyTorch model) and PyTorch otherwise; ``pytorch`` always serves
    the PyTorch model; ``onnx`` refuses a package without the int8 model.
    """

    max_batch_size: int = 16
    max_batch_delay_ms: int = 5
    workers: int = 1
    response_timeout_seconds: int = 60
    backend: Backend = "auto"

    def check(self) -> list[str]:
        problems = []
        if self.max_batch_size < 1:
            problems.append("max_batch_size must be at least 1")
        if not 0 <= self.max_batch_delay_ms <= 1000:
            problems.append("max_batch_delay_ms must be within 0-1000")
        if self.workers < 1:
            problems.append("workers must be at least 1")
        if self.response_timeout_seconds < 1:
            problems.append("response_timeout_seconds must be at least 1")
        return problems

    def container_environment(self) -> dict[str, str]:
        """The PyTorch serving container's (TorchServe's) variables for these settings."""
        return {
            "SAGEMAKER_TS_BATCH_SIZE": str(self.max_batch_size),
            "SAGEMAKER_TS_MAX_BATCH_DELAY": str(self.max_batch_delay_ms),
            "SAGEMAKER_TS_MIN_WORKERS": str(self.workers),
            "SAGEMAKER_TS_MAX_WORKERS": str(self.workers),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers),
            "SAGEMAKER_TS_RESPONSE_TIMEOUT": str(self.response_timeout_seconds),
            "INFERENCE_BACKEND": self.backend,
        }


Retraining = Literal["off", "on_persistent_drift"]
_SCHEDULE = re.compile(r"^(rate\((1 (minute|hour|day)|[1-9][0-9]* (minutes|hours|days))\)|cron\(.+\))$")


@dataclass(frozen=True)
class MonitoringSettings:
    """The drift monitor of the stage's endpoint (``model_build/steps/monitor.py``), on AWS and locally.

    On AWS an EventBridge Scheduler schedule runs the job (``schedule_expression``, null for none); each run
    judges the last ``window_hours`` of captures. Its ``Drift`` metric alarms after ``drift_alarm_periods``
    drifting runs in a row (persistent drift, not one odd hour), and with ``retraining`` set to
    ``on_persistent_drift`` that alarm starts the build pipeline, at most once per ``retrain_cooldown_hours``.
    """

    schedule_expression: str | None = "rate(1 hour)"
    window_hours: int = 1
    drift_alarm_periods: int = 3
    retraining: Retraining = "on_persistent_drift"
    retrain_cooldown_hours: int = 24
    instance_type: str = "ml.m5.large"
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)

    def check(self) -> list[str]:
        problems = []
        if self.schedule_expression is not None and not _SCHEDULE.match(self.schedule_expression):
            problems.append(
                f"schedule_expression {self.schedule_expression!r} is not an EventBridge Scheduler rate(...) "
                "or cron(...) expression (e.g. 'rate(1 hour)', 'cron(0 * * * ? *)')"
            )
        if not 1 <= self.window_hours <= 168:
            problems.append("window_hours must be within 1-168")
        if not 1 <= self.drift_alarm_periods <= 24:
            problems.append("drift_alarm_periods must be within 1-24")
        if self.retraining not in typing.get_args(Retraining):
            problems.append(
                f"retraining {self.retraining!r} is not one of {', '.join(typing.get_args(Retraining))}"
            )
        if self.retrain_cooldown_hours < 1:
            problems.append("retrain_cooldown_hours must be at least 1")
        if not self.instance_type.startswith("ml."):
            problems.append(f"instance_type {self.instance_type!r} is not a SageMaker instance type (ml.*)")
        problems.extend(f"thresholds: {problem}" for problem in self.thresholds.check())
        return problems


MAX_LABELS_PER_ITEM = 3
"""``HumanLoopConfig.TaskCount``'s maximum in botocore's SageMaker model (a test holds the two together)."""


@dataclass(frozen=True)
class HumanReviewSettings:
    """Which answers of the stage's endpoint go to people (``pipelines review fill``; A2I on AWS).

    An answer whose top probability is below ``confidence_threshold`` is queued; of the confident ones a
    ``sample_share`` is queued too, as a check on answers the model is sure of. Each item needs
    ``labels_per_item`` labels from different reviewers before its majority answer counts.

    On AWS (with the setting ``humanReviewWorkteamArn``) an EventBridge Scheduler schedule runs the human-loop
    job on ``schedule_expression`` (null: none), over the last ``window_hours`` of captures, on one
    ``instance_type`` instance: it starts an Amazon A2I human loop for each review the rule picks.
    """

    confidence_threshold: float = 0.6
    sample_share: float = 0.02
    labels_per_item: int = 1
    schedule_expression: str | None = None
    window_hours: int = 1
    instance_type: str = "ml.m5.large"

    def check(self) -> list[str]:
        problems = []
        if not 0 < self.confidence_threshold <= 1:
            problems.append("confidence_threshold must be above 0 and at most 1")
        if not 0 <= self.sample_share <= 1:
            problems.append("sample_share must be within 0-1")
        if not 1 <= self.labels_per_item <= MAX_LABELS_PER_ITEM:
            problems.append(
                f"labels_per_item must be within 1-{MAX_LABELS_PER_ITEM} (the most an A2I flow definition's "
                "TaskCount allows)"
            )
        if self.schedule_expression is not None and not _SCHEDULE.match(self.schedule_expression):
            problems.append(
                f"schedule_expression {self.schedule_expression!r} is not an EventBridge Scheduler rate(...) "
                "or cron(...) expression (e.g. 'rate(1 hour)')"
            )
        if not 1 <= self.window_hours <= 168:
            problems.append("window_hours must be within 1-168")
        if not self.instance_type.startswith("ml."):
            problems.append(f"instance_type {self.instance_type!r} is not a SageMaker instance type (ml.*)")
        return problems


@dataclass(frozen=True)
class StageConfig:
    stage: str
    endpoint: EndpointSettings
    autoscaling: AutoscalingSettings
    data_capture: DataCaptureSettings
    deployment: DeploymentSettings
    alarms: AlarmSettings
    serving: ServingSettings = field(default_factory=ServingSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    human_review: HumanReviewSettings = field(default_factory=HumanReviewSettings)

    def check(self) -> list[str]:
        problems = [] if self.stage in STAGES else [f"stage {self.stage!r} is not one of {', '.join(STAGES)}"]
        for section in (self.endpoint, self.autoscaling, self.data_capture, self.deployment, self.alarms):
            name = next(f.name for f in dataclasses.fields(self) if getattr(self, f.name) is section)
            problems.extend(f"{name}: {problem}" for problem in section.check())
        problems.extend(f"serving: {problem}" for problem in self.serving.check())
        problems.extend(f"monitoring: {problem}" for problem in self.monitoring.check())
        problems.extend(f"human_review: {problem}" for problem in self.human_review.check())
        step = self.deployment.canary_size_percent * self.autoscaling.min_instances / 100
        if self.deployment.traffic_routing != "ALL_AT_ONCE" and step < 1:
            problems.append(
                f"deployment: a {self.deployment.canary_size_percent}% {self.deployment.traffic_routing} step of "
                f"{self.autoscaling.min_instances} instance(s) is less than one instance; use ALL_AT_ONCE (still "
                "blue/green, with baking and rollback) or more instances"
            )
        if not (
            self.autoscaling.min_instances
            <= self.endpoint.initial_instance_count
            <= self.autoscaling.max_instances
        ):
            problems.append(
                "endpoint: initial_instance_count must be within autoscaling's min_instances and max_instances"
            )
        return problems

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_stage(stage: str, stages_dir: Path = STAGES_DIR) -> StageConfig:
    """``<stages_dir>/<stage>.json`` as a checked :class:`StageConfig`."""
    if stage not in STAGES:
        raise StageConfigError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    path = stages_dir / f"{stage}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageConfigError(f"{path}: no such stage file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StageConfigError(f"{path}: not valid JSON: {error}") from None
    config = _build(StageConfig, document, str(path), "")
    if config.stage != stage:
        raise StageConfigError(f"{path}: 'stage' is {config.stage!r}, but the file is the {stage!r} stage's")
    problems = config.check()
    if problems:
        raise StageConfigError(f"{path}: " + "; ".join(problems))
    return config


def load_stages(stages_dir: Path = STAGES_DIR) -> dict[str, StageConfig]:
    """Every stage, in rollout order."""
    return {stage: load_stage(stage, stages_dir) for stage in STAGES}


def _build(cls: type, document: Any, path: str, where: str) -> Any:
    """``cls(**document)`` with each field's type checked; nested dataclasses are built the same way."""
    if not isinstance(document, dict):
        raise StageConfigError(f"{path}: {where or 'the file'} must be a JSON object")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(document) - set(fields))
    if unknown:
        raise StageConfigError(
            f"{path}: unknown key(s) {', '.join(where + k for k in unknown)}; known: {', '.join(fields)}"
        )
    values = {}
    for name, f in fields.items():
        key = f"{where}{name}"
        if name not in document:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise StageConfigError(f"{path}: missing key {key}")
            continue
        values[name] = _value(hints[name], document[name], path, key)
    return cls(**values)


def _value(hint: Any, value: Any, path: str, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path, f"{key}.")
    if typing.get_origin(hint) is Literal:
        expected: tuple[type, ...] = (str,)
    elif hint is int:
        expected = (int,)
    elif hint is float:
        expected = (int, float)
    elif hint is str:
        expected = (str,)
    elif isinstance(hint, types.UnionType):
        expected = typing.get_args(hint)
    else:  # pragma: no cover - a field type this loader was not taught
        raise TypeError(f"no loader for {hint!r}")
    if isinstance(value, bool) or not isinstance(value, expected):
        raise StageConfigError(
            f"{path}: {key} is {json.dumps(value)}, expected {' or '.join(t.__name__ for t in expected)}"
        )
    return value
