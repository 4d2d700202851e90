"""The model-build pipeline, described once: its parameters and its steps, gates included.

Two runners read this description and nothing else: ``model_build.sagemaker_pipeline`` turns it into a
SageMaker Pipeline (SDK v3), and ``pipelines.local`` runs the same steps as subprocesses under the container
contract. It is plain data with no SageMaker import, so the local mode stays fast and offline.

A pipeline is one ordered tuple of steps of five kinds (:data:`Step`): processing, training, condition,
register and fail. Each runner maps a step's ``kind`` to one handler, so a new kind is one handler per runner
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

from dataclasses import dataclass, field
from typing import ClassVar, Literal

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

    def default_for(self, local: bool) -> ParameterValue:
        return self.local_default if local and self.local_default is not None else self.default


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
        return (*self.channels.values(), *self.hyperparameters.values())


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
    model_package_group: Config
    approval_status: Value
    metrics_report: StepOutput
    """The evaluation step's output that holds ``evaluation.json`` (attached as ``ModelMetrics``)."""
    metrics_file: str
    content_types: tuple[str, ...]
    response_types: tuple[str, ...]
    inference_instance_type: Value
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


Step = ProcessingStep | TrainingStep | ConditionStep | RegisterStep | FailStep
JobStep = ProcessingStep | TrainingStep


@dataclass(frozen=True)
class PipelineSpec:
    parameters: tuple[Parameter, ...]
    steps: tuple[Step, ...]
    description: str = ""
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
ACCURACY_JSON_PATH = "metrics.accuracy.value"
F1_MACRO_JSON_PATH = "metrics.f1_macro.value"
BASELINE_MARGIN_JSON_PATH = "f1_macro_margin_over_best_baseline.value"
"""Written by ``evaluate.py``: the model's macro-F1 minus the best baseline's, on the same test split."""

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
    ),
    instance_type("TrainingInstanceType", "ml.g5.2xlarge", "Instance type of training."),
    Parameter(
        "TrainingInstanceCount", "Integer", 1, "Training instances; more than one trains data-parallel."
    ),
    Parameter(
        "PretrainedModel",
        "String",
        "roberta-base",
        "Hugging Face model id or folder to fine-tune.",
        local_default=BUNDLED_MODEL,
    ),
    Parameter("MaxSeqLength", "Integer", 128, "Tokens per review after truncation."),
    Parameter("BalanceDataset", "Boolean", True, "Downsample every sentiment to the size of the smallest."),
    Parameter("TrainSplitPercentage", "Float", 0.90, "Share of reviews for training."),
    Parameter("ValidationSplitPercentage", "Float", 0.05, "Share of reviews for validation."),
    Parameter("TestSplitPercentage", "Float", 0.05, "Share of reviews for the test set."),
    Parameter("Seed", "Integer", 42, "Seed of the split and of training."),
    Parameter(
        "MinTestReviewsPerClass",
        "Integer",
        5,
        "Processing fails when a class has fewer test reviews than this: a gate on fewer means little.",
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
    Parameter("MaxMissingShare", "Float", 0.5, "The data check fails when a column has more missing values."),
    Parameter(
        "MaxEmptyTextShare", "Float", 0.1, "The data check fails when more reviews have an empty text."
    ),
    Parameter(
        "MaxDuplicateShare", "Float", 0.1, "The data check fails when more rows repeat an earlier row."
    ),
    Parameter(
        "MaxUnparseableShare",
        "Float",
        0.05,
        "The schema check fails when more of a typed column's values (Rating, Age, ...) do not parse.",
    ),
    Parameter(
        "GateOnBias",
        "Boolean",
        False,
        "Also fail the data check on bias: some category's |CI| or |DPL| above the two thresholds below.",
    ),
    Parameter(
        "MaxAbsClassImbalance", "Float", 0.99, "With GateOnBias: the largest |CI| a category may have."
    ),
    Parameter("MaxAbsDpl", "Float", 0.5, "With GateOnBias: the largest |DPL| a category may have."),
    Parameter("Epochs", "Integer", 3, "Training epochs; the best epoch on validation is kept."),
    Parameter(
        "LearningRate",
        "Float",
        5e-5,
        "Peak learning rate of AdamW.",
        # The bundled MiniLM (22M parameters) fine-tunes best with a larger step than roberta-base: on the
        # sample, 3 epochs reach test macro-F1 ~0.90 at 2e-4 against ~0.75 at 5e-5.
        local_default=2e-4,
    ),
    Parameter("TrainBatchSize", "Integer", 32, "Training batch size per process."),
    Parameter("ValidationBatchSize", "Integer", 64, "Validation batch size."),
    Parameter("TrainStepsPerEpoch", "Integer", 0, "Cap on training steps per epoch; 0 = the whole split."),
    Parameter(
        "ValidationStepsPerEpoch", "Integer", 0, "Cap on validation steps per epoch; 0 = the whole split."
    ),
    Parameter("FreezeBertLayer", "Boolean", False, "Train only the classifier head."),
    Parameter("WarmupRatio", "Float", 0.1, "Share of training steps with a linear warmup."),
    Parameter(
        "ClassWeightedLoss",
        "Boolean",
        True,
        "Weight the loss by inverse class frequency in the train split (all ~1 on balanced data).",
    ),
    Parameter("MinAccuracy", "Float", 0.5, "Test accuracy a model needs to be registered."),
    Parameter("MinF1Macro", "Float", 0.5, "Test macro-F1 a model needs to be registered."),
    Parameter(
        "MinBaselineMargin",
        "Float",
        -0.1,
        "The model's test macro-F1 minus the best baseline's (majority class, TF-IDF + logistic regression) "
        "must reach this; negative: how far below the best cheap baseline a model may fall.",
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
        TrainingStep(
            name=TRAIN,
            description="Fine-tune the pretrained model into a 3-class sentiment classifier.",
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
            },
            metric_definitions=(
                ("train:loss", r"train_loss=([0-9.]+)"),
                ("validation:loss", r"val_loss=([0-9.]+)"),
                ("validation:accuracy", r"val_acc=([0-9.]+)"),
                # The tuning objective and what picks the best epoch (train.py SELECTION_METRIC).
                ("validation:f1_macro", r"val_f1_macro=([0-9.]+)"),
            ),
        ),
        ProcessingStep(
            name=EVALUATE,
            description="Score the test split against baselines; write evaluation.json and the confusion matrix.",
            script="evaluate.py",
            instance_type=Param("ProcessingInstanceType"),
            inputs=(
                ProcessingInput("model", StepOutput(TRAIN, "model"), f"{PROCESSING_INPUT}/model"),
                ProcessingInput("test", StepOutput(PROCESS, "test"), f"{PROCESSING_INPUT}/test"),
                ProcessingInput("train", StepOutput(PROCESS, "train"), f"{PROCESSING_INPUT}/train"),
            ),
            outputs=(ProcessingOutput("evaluation", f"{PROCESSING_OUTPUT}/evaluation"),),
            arguments={
                "--model-path": f"{PROCESSING_INPUT}/model",
                "--test-data": f"{PROCESSING_INPUT}/test",
                "--train-data": f"{PROCESSING_INPUT}/train",
                "--seed": Param("Seed"),
                "--output-data": f"{PROCESSING_OUTPUT}/evaluation",
                "--max-seq-length": Param("MaxSeqLength"),
            },
            property_files=(PropertyFile(EVALUATION_REPORT, "evaluation", EVALUATION_FILE),),
        ),
        ConditionStep(
            name=CHECK,
            description="The quality gate: accuracy, macro-F1, and macro-F1 above the best baseline's.",
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
            ),
            if_true=(REGISTER,),
            if_false=(FAIL,),
        ),
        RegisterStep(
            name=REGISTER,
            description="Register the model version with its evaluation report, pending approval by default.",
            model=StepOutput(TRAIN, "model"),
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
                ").",
            ),
        ),
    ),
)
