"""The model-build pipeline, described once: its parameters and its steps, gates included.

Two runners read this description and nothing else: ``model_build.sagemaker_pipeline`` turns it into a
SageMaker Pipeline (SDK v3), and ``pipelines.runners.local`` runs the same steps as subprocesses under the
container contract. It is plain data with no SageMaker import, so the local mode stays fast and offline. It is
one module, over 600 lines, on purpose: the step kinds, the parameters with their ranges and the pipeline that
uses them are read together, and splitting them would spread one description over several files.

A pipeline is one ordered tuple of steps of six kinds (:data:`Step`): processing, training, tuning (a training
step that may search its hyperparameters), condition, register and fail. Each runner maps a step's ``kind`` to one handler, so a new kind is one handler per runner
and a new step of a known kind is a few lines here. A condition names the steps of each branch; those steps
run only when their branch is taken (on SageMaker they are nested in the ``ConditionStep``), every other step
always runs, in order. What a step needs beyond its data is declared on it: the Feature Store
(``ProcessingStep.services``), checkpoints (``TrainingStep.checkpoints``), the external input data
(``Parameter.input_data``), the retry policies of a job (``retries``, :data:`JOB_RETRIES` by default).

Values in step arguments are either literals, a :class:`Param` (a pipeline parameter), a :class:`Config`
(a name from the project config), a :class:`StepOutput` (what an earlier step wrote) or, in conditions and
messages, a :class:`JsonValue` (a value in a JSON file an earlier step wrote). Container paths
(``/opt/ml/...``) are the SageMaker contract; the local runner maps them into its run folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from model_build.steps.diagnostics import ACTIONS, RULES, option, parameter_name
from model_build.steps.tracking import NO_RUN

ParameterType = Literal["String", "Integer", "Float", "Boolean"]
ParameterValue = str | int | float | bool

STEPS_SOURCE_DIR = "model_build/steps"
"""The code folder every job gets; the scripts below are relative to it."""

SERVING_SOURCE_DIR = "model_deploy/serving"
"""The inference handler, given to training as the ``serving`` channel and packed into ``model.tar.gz/code``."""

BUNDLED_MODEL = "bundled-minilm"
"""The local mode's default for ``PretrainedModel``: resolved to the folder of the pip-installed MiniLM."""

PROCESSING_INPUT = "/opt/ml/processing/input"
PROCESSING_OUTPUT = "/opt/ml/processing/output"
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
"""Where SageMaker tells a processing instance which of the job's hosts it is."""


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter: the same name and default on SageMaker and locally (unless ``local_default``)."""

    name: str
    type: ParameterType
    default: ParameterValue
    description: str
    local_default: ParameterValue | None = None
    """Only where the local machine cannot use the AWS default (the model, the input location)."""
    input_data: bool = False
    """An external data location: its content is hashed into the model's lineage, and empty means the data
    bucket's raw-reviews prefix (``s3://<data bucket>/<raw_reviews_prefix>/``), on AWS and locally."""
    fingerprint_of: str | None = None
    """The ``input_data`` parameter this one carries a digest of: the SageMaker runner lists that location
    and passes :func:`model_build.data_fingerprint.fingerprint` here, so a step reading it is not a cache
    hit on changed data (SageMaker caches on arguments, not on what an S3 URI holds)."""
    choices: tuple[str, ...] = ()
    """A String parameter's only values (SageMaker's ``EnumValues``); empty: any string."""
    pattern: str | None = None
    """A regular expression a String value must match whole, so that a run refuses a value up front rather
    than at the step that uses it (locally, never: an instance type means nothing on this machine)."""
    pattern_description: str = ""
    """What ``pattern`` asks for, in words, for the error message."""
    build_time: bool = False
    """On SageMaker, shapes the definition itself (a step's kind, an API field that takes no pipeline
    variable): ``run --sagemaker`` builds the definition with the run's value as its default, and an execution
    started elsewhere uses the value the definition was built with."""
    at_least: float | None = None
    """A number's lowest allowed value (inclusive). SageMaker's parameters carry no range, so both runners
    check these before starting anything (:meth:`PipelineSpec.value_problems`)."""
    above: float | None = None
    """A number's exclusive lower bound (a learning rate above 0)."""
    at_most: float | None = None
    """A number's highest allowed value (inclusive)."""
    model_artifact: bool = False
    """An ``s3://`` model artifact a step fetches itself rather than as a job input, because it may be empty
    (the champion's): the local runner passes the local file that stands for the URI."""

    def default_for(self, local: bool) -> ParameterValue:
        return self.local_default if local and self.local_default is not None else self.default

    def range_problem(self, value: ParameterValue) -> str | None:
        """Why ``value`` is outside this parameter's range, in words; None when it is inside."""
        if (
            self.type not in ("Integer", "Float")
            or isinstance(value, bool)
            or not isinstance(value, int | float)
        ):
            return None
        inside = (
            math.isfinite(value)
            and (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.at_most is None or value <= self.at_most)
        )
        if inside:
            return None
        if self.at_least is not None and self.at_most is not None:
            bounds = f"from {self.at_least:g} to {self.at_most:g}"
        else:
            wanted = [
                f"at least {self.at_least:g}" if self.at_least is not None else "",
                f"above {self.above:g}" if self.above is not None else "",
                f"at most {self.at_most:g}" if self.at_most is not None else "",
            ]
            bounds = " and ".join(part for part in wanted if part) or "a finite number"
        return f"{self.name}={value:g} is out of range: it must be {bounds} ({self.description.rstrip('.')})"


@dataclass(frozen=True)
class ParameterSum:
    """Parameters whose values must add up to ``total`` (the split shares to 1)."""

    names: tuple[str, ...]
    total: float = 1.0
    tolerance: float = 1e-6

    def problem(self, values: Mapping[str, ParameterValue]) -> str | None:
        parts = [float(values[name]) for name in self.names]
        if abs(sum(parts) - self.total) <= self.tolerance:
            return None
        shown = " + ".join(f"{name} {values[name]:g}" for name in self.names)
        return f"{shown} = {sum(parts):g}; they must add up to {self.total:g}"


@dataclass(frozen=True)
class Param:
    """A reference to a pipeline parameter."""

    name: str


@dataclass(frozen=True)
class Config:
    """A reference to a name in ``model_build.config.ProjectConfig`` (an attribute name)."""

    attribute: str


@dataclass(frozen=True)
class StepOutput:
    """An output an earlier step wrote: a processing output's name, or ``model`` for a training step."""

    step: str
    output: str


@dataclass(frozen=True)
class JsonValue:
    """A value in a JSON file an earlier step wrote: SageMaker's ``JsonGet`` on the step's ``PropertyFile``."""

    step: str
    property_file: str
    json_path: str


Value = ParameterValue | Param | Config | StepOutput

FEATURE_STORE = "feature_store"
"""A service a processing step may need: the Feature Store runtime (the local mode serves a stand-in)."""
EXPERIMENT_TRACKING = "experiment_tracking"
"""A service a job step may need: the execution's MLflow run (:mod:`model_build.steps.tracking`). The runners
hand such a job the tracking URI and the run (:data:`MLFLOW_RUN_PARAMETER`); on AWS its role may log to the
project's tracking server."""


RetryReason = Literal[
    "Step.THROTTLING",
    "Step.SERVICE_FAULT",
    "SageMaker.JOB_INTERNAL_ERROR",
    "SageMaker.CAPACITY_ERROR",
    "SageMaker.RESOURCE_LIMIT",
]
"""SageMaker Pipelines' retryable exception types (sagemaker/latest/dg/pipelines-retry-policy.html): throttled
or failed calls to SageMaker (``Step.*``); a job's internal error, EC2 capacity shortfall or a quota it
exceeded (``SageMaker.*``). A script's own failure (``AlgorithmError``) is none of them: never retried."""

MAX_RETRY_ATTEMPTS = 20
"""SageMaker's cap on ``MaxAttempts`` (the SDK's ``MAX_ATTEMPTS_CAP``)."""


@dataclass(frozen=True)
class RetryPolicy:
    """One ``RetryPolicies`` entry of a job step: on any of ``on``, retry up to ``max_attempts`` times.

    The n-th retry waits ``interval_seconds * backoff_rate ** (n - 1)`` (:meth:`waits`). Reasons of one
    family only: ``Step.*`` and ``SageMaker.*`` are two policy types in the SDK.
    """

    on: tuple[RetryReason, ...]
    max_attempts: int
    """Retries after the first attempt (SageMaker's ``MaxAttempts``, "the maximum number of retry attempts")."""
    interval_seconds: int
    backoff_rate: float = 2.0

    def __post_init__(self) -> None:
        families = {reason.split(".")[0] for reason in self.on}
        if len(families) != 1:
            raise ValueError(
                f"a retry policy needs reasons of one family (Step.* or SageMaker.*), got {self.on}"
            )
        if not 1 <= self.max_attempts <= MAX_RETRY_ATTEMPTS:
            raise ValueError(f"max_attempts must be 1-{MAX_RETRY_ATTEMPTS}, got {self.max_attempts}")
        if self.interval_seconds < 0 or self.backoff_rate < 1:
            raise ValueError(
                f"interval_seconds must be >= 0 and backoff_rate >= 1, got {self.interval_seconds}, "
                f"{self.backoff_rate}"
            )

    @property
    def family(self) -> Literal["Step", "SageMaker"]:
        return "Step" if self.on[0].startswith("Step.") else "SageMaker"

    def waits(self) -> tuple[float, ...]:
        """Seconds before each retry, first to last."""
        return tuple(self.interval_seconds * self.backoff_rate**n for n in range(self.max_attempts))

    def request(self) -> dict[str, object]:
        """The policy as a pipeline definition spells it (what the local runner records, too)."""
        return {
            "ExceptionType": list(self.on),
            "IntervalSeconds": self.interval_seconds,
            "BackoffRate": self.backoff_rate,
            "MaxAttempts": self.max_attempts,
        }


def retry_policy_text(request: Mapping[str, object]) -> str:
    """A recorded ``RetryPolicies`` entry (:meth:`RetryPolicy.request`) in words, for people to read."""
    attempts, interval = request["MaxAttempts"], float(str(request["IntervalSeconds"]))
    rate = float(str(request.get("BackoffRate", 1.0)))
    waits = f"{interval:g} s" + (f", each wait x{rate:g}" if rate != 1 else "")
    reasons = request["ExceptionType"]
    shown = ", ".join(map(str, reasons)) if isinstance(reasons, list | tuple) else str(reasons)
    return f"{shown}: up to {attempts} retries, first after {waits}"


JOB_RETRIES: tuple[RetryPolicy, ...] = (
    # SageMaker's API calls: throttling passes in seconds to minutes (waits 10 s ... 160 s, ~5 min in all).
    RetryPolicy(("Step.THROTTLING", "Step.SERVICE_FAULT"), max_attempts=5, interval_seconds=10),
    # A new job: GPU capacity and instance quotas free up in minutes to an hour (waits 2, 4, 8, 16 min). A
    # retried training job resumes from the execution's checkpoints (TrainingStep.checkpoints).
    RetryPolicy(
        ("SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT", "SageMaker.JOB_INTERNAL_ERROR"),
        max_attempts=4,
        interval_seconds=120,
    ),
)
"""The retry policies of every job step unless the step says otherwise."""


@dataclass(frozen=True)
class ProcessingInput:
    name: str
    source: Value
    destination: str
    distribution: Literal["FullyReplicated", "ShardedByS3Key"] = "FullyReplicated"


@dataclass(frozen=True)
class ProcessingOutput:
    name: str
    source: str
    """The container folder the script writes to."""


@dataclass(frozen=True)
class PropertyFile:
    """A JSON file a step writes that a condition reads (SageMaker's ``PropertyFile``)."""

    name: str
    output: str
    path: str


@dataclass(frozen=True)
class ProcessingStep:
    name: str
    script: str
    arguments: dict[str, Value]
    inputs: tuple[ProcessingInput, ...]
    outputs: tuple[ProcessingOutput, ...]
    instance_type: Value
    instance_count: Value = 1
    property_files: tuple[PropertyFile, ...] = ()
    services: tuple[str, ...] = ()
    """What the job talks to besides its inputs and outputs (:data:`FEATURE_STORE`); on AWS the step's role
    may do so only when it is declared here (:mod:`model_build.step_roles`)."""
    description: str = ""
    retries: tuple[RetryPolicy, ...] = JOB_RETRIES
    environment: dict[str, Value] = field(default_factory=dict)
    """Environment variables of the job; part of the step's arguments, so of its cache key."""
    depends_on: tuple[str, ...] = ()
    """Earlier steps that must succeed first though no output of theirs is read (a gate on the same data)."""
    kind: ClassVar[str] = "Processing"

    def data_inputs(self) -> tuple[tuple[str, Value], ...]:
        return tuple((item.name, item.source) for item in self.inputs)

    def settings(self) -> dict[str, Value]:
        return dict(self.arguments)

    def references(self) -> tuple[Value | JsonValue, ...]:
        return (
            *(source for _, source in self.data_inputs()),
            *self.arguments.values(),
            *self.environment.values(),
        )


@dataclass(frozen=True)
class TrainingStep:
    name: str
    script: str
    hyperparameters: dict[str, Value]
    channels: dict[str, Value]
    """Channel name -> data; the script reads ``SM_CHANNEL_<NAME>``."""
    instance_type: Value
    instance_count: Value = 1
    metric_definitions: tuple[tuple[str, str], ...] = ()
    """(metric name, regex over the script's log lines); the regexes are tested on real log output."""
    services: tuple[str, ...] = ()
    """As a processing step's: what the job talks to besides its channels (:data:`EXPERIMENT_TRACKING`)."""
    environment: dict[str, Value] = field(default_factory=dict)
    """Environment variables of the job, as a processing step's."""
    checkpoints: bool = True
    """Checkpoint to ``s3://<artifacts>/<pipeline prefix>/checkpoints/<execution id>`` (both runners), so a
    retried or interrupted job resumes; a new execution starts from the pretrained model."""
    description: str = ""
    retries: tuple[RetryPolicy, ...] = JOB_RETRIES
    kind: ClassVar[str] = "Training"

    def data_inputs(self) -> tuple[tuple[str, Value], ...]:
        return tuple(self.channels.items())

    def settings(self) -> dict[str, Value]:
        return dict(self.hyperparameters)

    def references(self) -> tuple[Value | JsonValue, ...]:
        return (*self.channels.values(), *self.hyperparameters.values(), *self.environment.values())


@dataclass(frozen=True)
class SearchRange:
    """One hyperparameter a tuning search varies: SageMaker's ``ParameterRanges`` entry, and Optuna's."""

    hyperparameter: str
    """A key of the training step's ``hyperparameters`` (the ``--name`` the script reads)."""
    kind: Literal["Continuous", "Integer", "Categorical"]
    low: float = 0.0
    high: float = 0.0
    values: tuple[str, ...] = ()
    """Categorical only: the values, as the script receives them."""
    scaling: Literal["Linear", "Logarithmic"] = "Linear"

    def __post_init__(self) -> None:
        if self.kind == "Categorical":
            if not self.values or self.low or self.high:
                raise ValueError(f"{self.hyperparameter}: a categorical range takes values, not low/high")
        elif not self.low < self.high or self.values:
            raise ValueError(f"{self.hyperparameter}: a {self.kind} range needs low < high and no values")
        if self.scaling == "Logarithmic" and (self.kind == "Categorical" or self.low <= 0):
            raise ValueError(f"{self.hyperparameter}: a logarithmic range needs a numeric low above 0")


@dataclass(frozen=True)
class TuningStep(TrainingStep):
    """A training step that may search its hyperparameters: SageMaker's ``TuningStep``, Optuna locally.

    With ``max_jobs`` 0 it is a plain training step. Otherwise each trial is a training job under the same
    contract, with the ``ranges`` drawn by the search; the step's ``model`` is the best trial's (highest
    ``objective``, a name of ``metric_definitions``), so every later step reads it as before. On SageMaker
    whether the step tunes is decided when the definition is built (its ``max_jobs`` value there), since a
    step's kind cannot change with an execution's parameters; ``max_jobs`` then sets how many jobs run.
    """

    objective: str = ""
    ranges: tuple[SearchRange, ...] = ()
    max_jobs: Value = 0
    max_parallel_jobs: Value = 1
    random_seed: Value = 0
    """The search's seed (SageMaker's ``RandomSeed``, Optuna's sampler seed): the same trials again."""
    early_stopping: bool = True
    """SageMaker's ``TrainingJobEarlyStoppingType=Auto``: stop trials that trail the others' curves."""
    kind: ClassVar[str] = "Tuning"

    def __post_init__(self) -> None:
        names = dict(self.metric_definitions)
        if self.objective not in names:
            raise ValueError(f"{self.name}: the objective {self.objective!r} is not a metric definition")
        if not self.ranges:
            raise ValueError(f"{self.name}: a tuning step needs at least one search range")
        unknown = [r.hyperparameter for r in self.ranges if r.hyperparameter not in self.hyperparameters]
        if unknown:
            raise ValueError(f"{self.name}: tuning ranges must name its hyperparameters; unknown: {unknown}")

    def settings(self) -> dict[str, Value]:
        return {
            **self.hyperparameters,
            "tuning:max-jobs": self.max_jobs,
            "tuning:seed": self.random_seed,
            "tuning:objective": self.objective,
            "tuning:ranges": repr(self.ranges),
        }

    def references(self) -> tuple[Value | JsonValue, ...]:
        return (*super().references(), self.max_jobs, self.max_parallel_jobs, self.random_seed)


Operator = Literal[">=", ">", "<=", "<", "=="]


@dataclass(frozen=True)
class Check:
    """One comparison of a condition: ``left <operator> right``; ``name`` says what it checks, in messages."""

    name: str
    left: JsonValue
    operator: Operator
    right: Value


@dataclass(frozen=True)
class ConditionStep:
    """Takes ``if_true`` when every check holds (SageMaker ANDs a ConditionStep's conditions), else ``if_false``."""

    name: str
    checks: tuple[Check, ...]
    if_true: tuple[str, ...]
    if_false: tuple[str, ...]
    description: str = ""
    kind: ClassVar[str] = "Condition"

    def references(self) -> tuple[Value | JsonValue, ...]:
        return tuple(part for check in self.checks for part in (check.left, check.right))


@dataclass(frozen=True)
class RegisterStep:
    name: str
    model: StepOutput
    """The model's artifact: a ``model.tar.gz`` (a training job's ``model``), or the folder holding ``model_file``."""
    model_package_group: Config
    approval_status: Value
    metrics_report: StepOutput
    """The evaluation step's output that holds ``evaluation.json`` (attached as ``ModelMetrics``)."""
    metrics_file: str
    content_types: tuple[str, ...]
    response_types: tuple[str, ...]
    inference_instance_type: Value
    model_file: str = ""
    """The archive's name inside ``model`` when ``model`` is a processing output (a folder); empty: ``model`` is it."""
    description: str = ""
    data_report: StepOutput | None = None
    """The data-check step's output that holds ``data_report_file``: the pre-training bias report
    (``ModelMetrics.Bias.PreTrainingReport``), whose ``summary`` goes into the version's metadata."""
    data_report_file: str = ""
    data_report_metadata: tuple[tuple[str, str], ...] = ()
    """(metadata key, JSON path in the data report): the figures copied into ``CustomerMetadataProperties``."""
    kind: ClassVar[str] = "RegisterModel"

    def references(self) -> tuple[Value | JsonValue, ...]:
        return (self.model, self.metrics_report, *((self.data_report,) if self.data_report else ()))


@dataclass(frozen=True)
class FailStep:
    name: str
    message: tuple[Value | JsonValue | str, ...]
    """Joined into the failure message; a :class:`JsonValue` reads the value it names."""
    description: str = ""
    kind: ClassVar[str] = "Fail"

    def references(self) -> tuple[Value | JsonValue, ...]:
        return self.message


Step = ProcessingStep | TrainingStep | TuningStep | ConditionStep | RegisterStep | FailStep
JobStep = ProcessingStep | TrainingStep


@dataclass(frozen=True)
class PipelineSpec:
    parameters: tuple[Parameter, ...]
    steps: tuple[Step, ...]
    description: str = ""
    sums: tuple[ParameterSum, ...] = ()
    """Checks across parameters, with each parameter's own range (:meth:`value_problems`)."""
    _branches: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("pipeline_spec: " + "; ".join(problems))
        for step in self.steps:
            if isinstance(step, ConditionStep):
                for name in (*step.if_true, *step.if_false):
                    self._branches[name] = step.name

    def problems(self) -> list[str]:
        """What would make the description impossible to run, in words (empty when it is sound)."""
        problems: list[str] = []
        names = [step.name for step in self.steps]
        position = {name: index for index, name in enumerate(names)}
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            problems.append(f"step names used twice: {', '.join(duplicates)}")
        owners: dict[str, str] = {}
        parameter_names = {parameter.name for parameter in self.parameters}
        for index, step in enumerate(self.steps):
            for reference in step.references():
                earlier = getattr(reference, "step", None)
                if earlier is not None and position.get(earlier, len(names)) >= index:
                    problems.append(f"{step.name} uses {earlier}, which does not run before it")
                if isinstance(reference, Param) and reference.name not in parameter_names:
                    problems.append(f"{step.name} uses the unknown parameter {reference.name}")
            for earlier in getattr(step, "depends_on", ()):
                if position.get(earlier, len(names)) >= index:
                    problems.append(f"{step.name} depends on {earlier}, which does not run before it")
            if isinstance(step, ConditionStep):
                for name in (*step.if_true, *step.if_false):
                    if position.get(name, -1) <= index:
                        problems.append(f"{step.name}'s branch step {name} must be a step listed after it")
                    if name in owners:
                        problems.append(f"{name} is in a branch of both {owners[name]} and {step.name}")
                    owners[name] = step.name
        for rule in self.sums:
            problems += [
                f"the sum {rule.names} names the unknown parameter {n}"
                for n in rule.names
                if n not in parameter_names
            ]
        if not problems:
            for local in (False, True):
                problems += [f"default: {problem}" for problem in self.value_problems(self.defaults(local))]
        return problems

    def value_problems(self, values: Mapping[str, ParameterValue]) -> list[str]:
        """Each value outside its parameter's range, and each sum that does not add up, in words: what both
        runners refuse before starting anything (a MinAccuracy of 1.5 would otherwise fail after training)."""
        problems = [
            problem
            for parameter in self.parameters
            if parameter.name in values and (problem := parameter.range_problem(values[parameter.name]))
        ]
        if not problems:
            problems += [
                problem
                for rule in self.sums
                if all(name in values for name in rule.names) and (problem := rule.problem(values))
            ]
        return problems

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(f"the pipeline has no parameter {name!r}; known: {', '.join(self.parameter_names)}")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(parameter.name for parameter in self.parameters)

    def defaults(self, local: bool) -> dict[str, ParameterValue]:
        return {parameter.name: parameter.default_for(local) for parameter in self.parameters}

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"the pipeline has no step {name!r}")

    @property
    def step_names(self) -> tuple[str, ...]:
        """Every step in execution order (a branch step runs only when its branch is taken)."""
        return tuple(step.name for step in self.steps)

    def condition_of(self, name: str) -> str | None:
        """The condition whose branch holds step ``name``, or None for a step that always runs."""
        return self._branches.get(name)

    @property
    def top_level(self) -> tuple[Step, ...]:
        """The steps in no branch: SageMaker's ``Pipeline(steps=...)``."""
        return tuple(step for step in self.steps if step.name not in self._branches)

    def property_file(self, value: JsonValue) -> PropertyFile:
        step = self.step(value.step)
        for property_file in getattr(step, "property_files", ()):
            if property_file.name == value.property_file:
                return property_file
        raise KeyError(f"step {value.step} has no property file {value.property_file!r}")


CHECK_DATA = "CheckData"
PROCESS = "ProcessReviews"
TRAIN = "TrainModel"
EVALUATE = "EvaluateModel"
CHECK = "CheckModelQuality"
REGISTER = "RegisterModel"
FAIL = "FailQualityGate"

DATA_CHECK_REPORT = "DataCheckReport"
DATA_CHECK_FILE = "data_check.json"
"""Written by ``check_data.py``; its ``summary`` holds the figures the registered version carries."""
EXIT_MESSAGE = "/opt/ml/output/message"
"""A processing job's message file: SageMaker shows its first KB as the job's ``ExitMessage``."""
EVALUATION_REPORT = "EvaluationReport"
EVALUATION_FILE = "evaluation.json"
PACKAGE_OUTPUT = "package"
"""The evaluation step's output holding the package the register step registers (``evaluate.py --package-output``)."""
MODEL_ARCHIVE = "model.tar.gz"
ACCURACY_JSON_PATH = "metrics.accuracy.value"
F1_MACRO_JSON_PATH = "metrics.f1_macro.value"
BASELINE_MARGIN_JSON_PATH = "f1_macro_margin_over_best_baseline.value"
"""Written by ``evaluate.py``: the model's macro-F1 minus the best baseline's, on the same test split."""
CHAMPION_CHECK_JSON_PATH = "champion_check.holds"
CHAMPION_MESSAGE_JSON_PATH = "champion_check.message"
"""Written by ``evaluate.py`` (``champion.py``): whether the model's macro-F1 minus the champion's reaches
``MinChampionMargin`` (true without a champion), and that comparison in words."""
CHAMPION_PARAMETER = "ChampionModelPackageArn"
CHAMPION_URL_PARAMETER = "ChampionModelUrl"
CHAMPION_PARAMETERS = (CHAMPION_PARAMETER, CHAMPION_URL_PARAMETER)
"""Filled in by the runners when an execution starts (:mod:`model_build.steps.champion` says what they mean):
a rerun with an earlier execution's parameters leaves them out, so that it is compared with today's champion."""
MLFLOW_RUN_PARAMETER = "MlflowRunId"
"""The execution's MLflow run, created by the runner that starts it; a rerun leaves it out (a run of its own)."""
FILLED_AT_START = (*CHAMPION_PARAMETERS, MLFLOW_RUN_PARAMETER)

INSTANCE_TYPE_PATTERN = r"ml\.[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+"
"""A SageMaker instance type: ``ml.<family>.<size>`` (``ml.m5.large``, ``ml.g5.2xlarge``, ``ml.p4d.24xlarge``)."""
MODEL_APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
"""What ``CreateModelPackage`` takes as a new version's ``ModelApprovalStatus``."""


def instance_type(name: str, default: str, description: str) -> Parameter:
    return Parameter(
        name,
        "String",
        default,
        description,
        pattern=INSTANCE_TYPE_PATTERN,
        pattern_description="a SageMaker instance type, ml.<family>.<size>",
    )


TUNING_OBJECTIVE = "validation:best_f1_macro"
"""The search's objective: the kept (best) epoch's validation macro-F1, which the training script prints last
(SageMaker's tuner reads the latest value a job emits, API_FinalHyperParameterTuningJobObjectiveMetric)."""

SEARCH_SPACE: tuple[SearchRange, ...] = (
    SearchRange("learning-rate", "Continuous", 1e-5, 5e-4, scaling="Logarithmic"),
    SearchRange("epochs", "Integer", 2, 5),
    SearchRange("warmup-ratio", "Continuous", 0.0, 0.2),
    SearchRange("train-batch-size", "Categorical", values=("16", "32")),
)
"""What a tuning run varies, on both runners; every other hyperparameter keeps its parameter's value."""


def share(name: str, default: float, description: str) -> Parameter:
    """A Float parameter that is a share or a score: from 0 to 1."""
    return Parameter(name, "Float", default, description, at_least=0, at_most=1)


PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "InputDataUrl",
        "String",
        "",
        "Raw review CSVs (a prefix or one file). Empty means the data bucket's raw-reviews prefix.",
        local_default="data/reviews_sample.csv",
        input_data=True,
    ),
    Parameter(
        "InputDataFingerprint",
        "String",
        "",
        "Digest of the InputDataUrl objects (keys, sizes, ETags); `run --sagemaker` sets it so processing is "
        "never a cache hit on changed data. A start from elsewhere should set it too.",
        fingerprint_of="InputDataUrl",
    ),
    instance_type("ProcessingInstanceType", "ml.c5.2xlarge", "Instance type of processing and evaluation."),
    Parameter(
        "ProcessingInstanceCount",
        "Integer",
        1,
        "Processing instances; each reads all the input and writes its share of the rows.",
        at_least=1,
    ),
    instance_type("TrainingInstanceType", "ml.g5.2xlarge", "Instance type of training."),
    Parameter(
        "TrainingInstanceCount",
        "Integer",
        1,
        "Training instances; more than one trains data-parallel.",
        at_least=1,
    ),
    Parameter(
        "PretrainedModel",
        "String",
        "roberta-base",
        "Hugging Face model id or folder to fine-tune.",
        local_default=BUNDLED_MODEL,
    ),
    # RoBERTa and MiniLM have 512 positions; a sequence holds at least its two special tokens.
    Parameter("MaxSeqLength", "Integer", 128, "Tokens per review after truncation.", at_least=2, at_most=512),
    Parameter("BalanceDataset", "Boolean", True, "Downsample every sentiment to the size of the smallest."),
    share("TrainSplitPercentage", 0.90, "Share of reviews for training."),
    share("ValidationSplitPercentage", 0.05, "Share of reviews for validation."),
    share("TestSplitPercentage", 0.05, "Share of reviews for the test set."),
    # NumPy's and PyTorch's seeds are unsigned 32-bit numbers.
    Parameter("Seed", "Integer", 42, "Seed of the split and of training.", at_least=0, at_most=2**32 - 1),
    Parameter(
        "MinTestReviewsPerClass",
        "Integer",
        5,
        "Processing fails when a class has fewer test reviews than this: a gate on fewer means little.",
        at_least=0,
    ),
    Parameter(
        "DataCheckFacets",
        "String",
        "Class Name,Division Name,Department Name",
        "Comma-separated columns the data check reports pre-training bias (CI, DPL) for; each is required.",
    ),
    Parameter(
        "BiasPositiveRatings", "String", "4,5", "Ratings whose label counts as positive in the DPL metric."
    ),
    share(
        "MaxMissingShare",
        0.5,
        "The data check fails when a column the pipeline reads has more missing values (others are reported).",
    ),
    share("MaxEmptyTextShare", 0.1, "The data check fails when more reviews have an empty text."),
    share("MaxDuplicateShare", 0.1, "The data check fails when more rows repeat an earlier row."),
    share(
        "MaxUnparseableShare",
        0.05,
        "The schema check fails when more of a typed column's values (Rating, Age, ...) do not parse.",
    ),
    Parameter(
        "GateOnBias",
        "Boolean",
        False,
        "Also fail the data check on bias: some category's |CI| or |DPL| above the two thresholds below.",
    ),
    # CI and DPL both lie in [-1, 1].
    share("MaxAbsClassImbalance", 0.99, "With GateOnBias: the largest |CI| a category may have."),
    share("MaxAbsDpl", 0.5, "With GateOnBias: the largest |DPL| a category may have."),
    Parameter("Epochs", "Integer", 3, "Training epochs; the best epoch on validation is kept.", at_least=1),
    Parameter(
        "LearningRate",
        "Float",
        5e-5,
        "Peak learning rate of AdamW.",
        # The bundled MiniLM (22M parameters) fine-tunes best with a larger step than roberta-base: on the
        # sample, 3 epochs reach test macro-F1 ~0.90 at 2e-4 against ~0.75 at 5e-5.
        local_default=2e-4,
        above=0,
    ),
    Parameter("TrainBatchSize", "Integer", 32, "Training batch size per process.", at_least=1),
    Parameter("ValidationBatchSize", "Integer", 64, "Validation batch size.", at_least=1),
    Parameter(
        "TrainStepsPerEpoch",
        "Integer",
        0,
        "Cap on training steps per epoch; 0 = the whole split.",
        at_least=0,
    ),
    Parameter(
        "ValidationStepsPerEpoch",
        "Integer",
        0,
        "Cap on validation steps per epoch; 0 = the whole split.",
        at_least=0,
    ),
    Parameter("FreezeBertLayer", "Boolean", False, "Train only the classifier head."),
    share("WarmupRatio", 0.1, "Share of training steps with a linear warmup."),
    Parameter(
        "ClassWeightedLoss",
        "Boolean",
        True,
        "Weight the loss by inverse class frequency in the train split (all ~1 on balanced data).",
    ),
    *(
        Parameter(
            parameter_name(rule),
            "String",
            "warn",
            f"The training diagnostic {rule} (model_build/steps/diagnostics.py): 'warn' logs its verdict, "
            "'stop' also stops the training job with it, 'off' skips the rule.",
            choices=ACTIONS,
        )
        for rule in RULES
    ),
    Parameter(
        MLFLOW_RUN_PARAMETER,
        "String",
        NO_RUN,
        f"The execution's MLflow run id: `pipelines run` creates the run and fills it in. '{NO_RUN}': the jobs "
        "log nothing to MLflow.",
    ),
    Parameter(
        "TuningMaxJobs",
        "Integer",
        0,
        "Training jobs of a hyperparameter search (SEARCH_SPACE); 0 trains once with the parameters as set.",
        build_time=True,
        at_least=0,
    ),
    Parameter(
        "TuningMaxParallelJobs",
        "Integer",
        2,
        "Search trials at a time (locally also at most the machine's cores).",
        build_time=True,
        at_least=1,
    ),
    share("MinAccuracy", 0.5, "Test accuracy a model needs to be registered."),
    share("MinF1Macro", 0.5, "Test macro-F1 a model needs to be registered."),
    Parameter(
        "MinBaselineMargin",
        "Float",
        -0.1,
        "The model's test macro-F1 minus the best baseline's (majority class, TF-IDF + logistic regression) "
        "must reach this; negative: how far below the best cheap baseline a model may fall.",
        at_least=-1,
        at_most=1,
    ),
    Parameter(
        "MinChampionMargin",
        "Float",
        0.0,
        "The model's test macro-F1 minus the champion's (the version production serves, else the newest "
        "Approved one, scored on the same test split) must reach this; 0: not worse. No champion: holds.",
        at_least=-1,
        at_most=1,
    ),
    Parameter(
        CHAMPION_PARAMETER,
        "String",
        "",
        "The champion's model package ARN. `pipelines run` fills it in at start (the version the prod endpoint "
        "serves, else the newest Approved one); 'none': no champion. Empty at evaluation: no champion.",
    ),
    Parameter(
        CHAMPION_URL_PARAMETER,
        "String",
        "",
        f"The champion's model.tar.gz (its ModelDataUrl); filled in with {CHAMPION_PARAMETER}.",
        model_artifact=True,
    ),
    Parameter(
        "ModelApprovalStatus",
        "String",
        "PendingManualApproval",
        "Status of a newly registered version: PendingManualApproval, Approved or Rejected.",
        choices=MODEL_APPROVAL_STATUSES,
    ),
    instance_type("DeployInstanceType", "ml.m5.large", "Instance type the registered model is meant for."),
)

PIPELINE = PipelineSpec(
    description="Reviews -> RoBERTa features -> fine-tuned 3-class sentiment model -> evaluation -> registry",
    parameters=PARAMETERS,
    sums=(ParameterSum(("TrainSplitPercentage", "ValidationSplitPercentage", "TestSplitPercentage")),),
    steps=(
        ProcessingStep(
            name=CHECK_DATA,
            description="Check the raw reviews: schema, missing values, duplicates, labels, pre-training bias.",
            script="check_data.py",
            instance_type=Param("ProcessingInstanceType"),
            # One instance sees every file: duplicates and the bias metrics are over the whole input.
            inputs=(ProcessingInput("raw", Param("InputDataUrl"), f"{PROCESSING_INPUT}/data"),),
            outputs=(ProcessingOutput("report", f"{PROCESSING_OUTPUT}/report"),),
            arguments={
                "--input-data": f"{PROCESSING_INPUT}/data",
                "--output-data": f"{PROCESSING_OUTPUT}/report",
                "--exit-message": EXIT_MESSAGE,
                "--facets": Param("DataCheckFacets"),
                "--positive-ratings": Param("BiasPositiveRatings"),
                "--max-missing-share": Param("MaxMissingShare"),
                "--max-empty-text-share": Param("MaxEmptyTextShare"),
                "--max-duplicate-share": Param("MaxDuplicateShare"),
                "--max-unparseable-share": Param("MaxUnparseableShare"),
                "--gate-on-bias": Param("GateOnBias"),
                "--max-abs-class-imbalance": Param("MaxAbsClassImbalance"),
                "--max-abs-dpl": Param("MaxAbsDpl"),
            },
            property_files=(PropertyFile(DATA_CHECK_REPORT, "report", DATA_CHECK_FILE),),
        ),
        ProcessingStep(
            name=PROCESS,
            depends_on=(CHECK_DATA,),
            description="Clean, label, split and tokenize the raw reviews; write the Feature Store records.",
            script="preprocess.py",
            instance_type=Param("ProcessingInstanceType"),
            instance_count=Param("ProcessingInstanceCount"),
            inputs=(
                # Every instance reads all of it and writes the rows it owns (see preprocess.py): sharding
                # by key would leave one big file to one instance, and an instance without a file.
                ProcessingInput("raw", Param("InputDataUrl"), f"{PROCESSING_INPUT}/data"),
            ),
            outputs=tuple(
                ProcessingOutput(name, f"{PROCESSING_OUTPUT}/{name}")
                for name in ("train", "validation", "test", "rejects", "features")
            ),
            arguments={
                "--input-data": f"{PROCESSING_INPUT}/data",
                "--output-data": PROCESSING_OUTPUT,
                "--resource-config": RESOURCE_CONFIG,
                "--pretrained-model": Param("PretrainedModel"),
                "--max-seq-length": Param("MaxSeqLength"),
                "--balance-dataset": Param("BalanceDataset"),
                "--train-split-percentage": Param("TrainSplitPercentage"),
                "--validation-split-percentage": Param("ValidationSplitPercentage"),
                "--test-split-percentage": Param("TestSplitPercentage"),
                "--seed": Param("Seed"),
                "--min-test-reviews-per-class": Param("MinTestReviewsPerClass"),
                "--feature-group-name": Config("feature_group_name"),
            },
            services=(FEATURE_STORE,),
            environment={"INPUT_DATA_FINGERPRINT": Param("InputDataFingerprint")},
        ),
        TuningStep(
            name=TRAIN,
            description="Fine-tune the pretrained model into a 3-class sentiment classifier "
            "(with TuningMaxJobs > 0: the best of a hyperparameter search).",
            script="train.py",
            instance_type=Param("TrainingInstanceType"),
            instance_count=Param("TrainingInstanceCount"),
            channels={
                "train": StepOutput(PROCESS, "train"),
                "validation": StepOutput(PROCESS, "validation"),
                "serving": SERVING_SOURCE_DIR,
            },
            hyperparameters={
                "pretrained-model": Param("PretrainedModel"),
                "epochs": Param("Epochs"),
                "learning-rate": Param("LearningRate"),
                "train-batch-size": Param("TrainBatchSize"),
                "validation-batch-size": Param("ValidationBatchSize"),
                "train-steps-per-epoch": Param("TrainStepsPerEpoch"),
                "validation-steps-per-epoch": Param("ValidationStepsPerEpoch"),
                "max-seq-length": Param("MaxSeqLength"),
                "freeze-bert-layer": Param("FreezeBertLayer"),
                "warmup-ratio": Param("WarmupRatio"),
                "class-weighted-loss": Param("ClassWeightedLoss"),
                "seed": Param("Seed"),
                **{option(rule): Param(parameter_name(rule)) for rule in RULES},
            },
            services=(EXPERIMENT_TRACKING,),
            metric_definitions=(
                ("train:loss", r"train_loss=([0-9.]+)"),
                ("validation:loss", r"val_loss=([0-9.]+)"),
                ("validation:accuracy", r"val_acc=([0-9.]+)"),
                # Each epoch's validation macro-F1 (what picks the kept epoch: train.py SELECTION_METRIC).
                ("validation:f1_macro", r"val_f1_macro=([0-9.]+)"),
                (TUNING_OBJECTIVE, r"best_validation_f1_macro=([0-9.]+)"),
            ),
            objective=TUNING_OBJECTIVE,
            ranges=SEARCH_SPACE,
            max_jobs=Param("TuningMaxJobs"),
            max_parallel_jobs=Param("TuningMaxParallelJobs"),
            random_seed=Param("Seed"),
        ),
        ProcessingStep(
            name=EVALUATE,
            description="Score the test split against the baselines and the champion; write evaluation.json.",
            script="evaluate.py",
            instance_type=Param("ProcessingInstanceType"),
            inputs=(
                ProcessingInput("model", StepOutput(TRAIN, "model"), f"{PROCESSING_INPUT}/model"),
                ProcessingInput("test", StepOutput(PROCESS, "test"), f"{PROCESSING_INPUT}/test"),
                ProcessingInput("train", StepOutput(PROCESS, "train"), f"{PROCESSING_INPUT}/train"),
                # The data's class shares: the monitoring baseline weights the test split's classes to them.
                ProcessingInput(
                    "data_check", StepOutput(CHECK_DATA, "report"), f"{PROCESSING_INPUT}/data_check"
                ),
            ),
            outputs=(
                ProcessingOutput("evaluation", f"{PROCESSING_OUTPUT}/evaluation"),
                # The package the register step registers: the trained model, plus its int8 ONNX model when it
                # answers the test split like the PyTorch model (evaluation.json's onnx_int8 says which).
                ProcessingOutput(PACKAGE_OUTPUT, f"{PROCESSING_OUTPUT}/{PACKAGE_OUTPUT}"),
            ),
            services=(EXPERIMENT_TRACKING,),
            arguments={
                "--model-path": f"{PROCESSING_INPUT}/model",
                "--package-output": f"{PROCESSING_OUTPUT}/{PACKAGE_OUTPUT}",
                "--test-data": f"{PROCESSING_INPUT}/test",
                "--train-data": f"{PROCESSING_INPUT}/train",
                "--seed": Param("Seed"),
                "--output-data": f"{PROCESSING_OUTPUT}/evaluation",
                "--max-seq-length": Param("MaxSeqLength"),
                "--class-shares": f"{PROCESSING_INPUT}/data_check/{DATA_CHECK_FILE}",
                "--champion-model-package-arn": Param(CHAMPION_PARAMETER),
                "--champion-model-url": Param(CHAMPION_URL_PARAMETER),
                "--min-champion-margin": Param("MinChampionMargin"),
            },
            property_files=(PropertyFile(EVALUATION_REPORT, "evaluation", EVALUATION_FILE),),
        ),
        ConditionStep(
            name=CHECK,
            description="The quality gate: accuracy, macro-F1, the margins over the best baseline and the champion.",
            checks=(
                Check(
                    "accuracy",
                    JsonValue(EVALUATE, EVALUATION_REPORT, ACCURACY_JSON_PATH),
                    ">=",
                    Param("MinAccuracy"),
                ),
                Check(
                    "macro-F1",
                    JsonValue(EVALUATE, EVALUATION_REPORT, F1_MACRO_JSON_PATH),
                    ">=",
                    Param("MinF1Macro"),
                ),
                Check(
                    "macro-F1 margin over the best baseline",
                    JsonValue(EVALUATE, EVALUATION_REPORT, BASELINE_MARGIN_JSON_PATH),
                    ">=",
                    Param("MinBaselineMargin"),
                ),
                # The evaluation compares with MinChampionMargin (it is one of its arguments): "no champion"
                # holds, and a null margin is no number a SageMaker condition could compare.
                Check(
                    "not worse than the champion",
                    JsonValue(EVALUATE, EVALUATION_REPORT, CHAMPION_CHECK_JSON_PATH),
                    "==",
                    True,
                ),
            ),
            if_true=(REGISTER,),
            if_false=(FAIL,),
        ),
        RegisterStep(
            name=REGISTER,
            description="Register the model version with its evaluation report, pending approval by default.",
            model=StepOutput(EVALUATE, PACKAGE_OUTPUT),
            model_file=MODEL_ARCHIVE,
            model_package_group=Config("model_package_group_name"),
            approval_status=Param("ModelApprovalStatus"),
            metrics_report=StepOutput(EVALUATE, "evaluation"),
            metrics_file=EVALUATION_FILE,
            data_report=StepOutput(CHECK_DATA, "report"),
            data_report_file=DATA_CHECK_FILE,
            data_report_metadata=(
                ("DataCheckRows", "summary.rows"),
                ("DataCheckMaxMissingShare", "summary.max_missing_share"),
                ("DataCheckEmptyTextShare", "summary.empty_text_share"),
                ("DataCheckDuplicateShare", "summary.duplicate_share"),
                ("DataCheckPositiveLabelShare", "summary.positive_label_share"),
                ("DataCheckHumanLabels", "summary.human_labels"),
                ("DataCheckMaxAbsCI", "summary.max_abs_CI"),
                ("DataCheckMaxAbsDPL", "summary.max_abs_DPL"),
            ),
            content_types=("application/json", "application/jsonlines", "text/csv"),
            response_types=("application/json", "application/jsonlines"),
            inference_instance_type=Param("DeployInstanceType"),
        ),
        FailStep(
            name=FAIL,
            message=(
                "The model failed the quality gate and was not registered: test accuracy ",
                JsonValue(EVALUATE, EVALUATION_REPORT, ACCURACY_JSON_PATH),
                " (MinAccuracy ",
                Param("MinAccuracy"),
                "), macro-F1 ",
                JsonValue(EVALUATE, EVALUATION_REPORT, F1_MACRO_JSON_PATH),
                " (MinF1Macro ",
                Param("MinF1Macro"),
                "), macro-F1 margin over the best baseline ",
                JsonValue(EVALUATE, EVALUATION_REPORT, BASELINE_MARGIN_JSON_PATH),
                " (MinBaselineMargin ",
                Param("MinBaselineMargin"),
                "); champion: ",
                JsonValue(EVALUATE, EVALUATION_REPORT, CHAMPION_MESSAGE_JSON_PATH),
                ". Next: read EvaluateModel's evaluation.json and confusion matrix (locally `python -m "
                "pipelines executions latest` or the page), then train on more or cleaner data or for longer "
                "(--param Epochs=N); lower a threshold only if the model is good enough for its use.",
            ),
        ),
    ),
)
