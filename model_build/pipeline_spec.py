"""The model-build pipeline, described once: its parameters, steps, wiring and condition.

Two runners read this description and nothing else: ``model_build.sagemaker_pipeline`` turns it into a
SageMaker Pipeline (SDK v3), and ``pipelines.local`` runs the same steps as subprocesses under the container
contract. It is plain data with no SageMaker import, so the local mode stays fast and offline.

Values in step arguments are either literals, a :class:`Param` (a pipeline parameter), a :class:`Config`
(a name from the project config) or a :class:`StepOutput` (what an earlier step wrote). Container paths
(``/opt/ml/...``) are the SageMaker contract; the local runner maps them into its run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter: the same name and default on SageMaker and locally (unless ``local_default``)."""

    name: str
    type: ParameterType
    default: ParameterValue
    description: str
    local_default: ParameterValue | None = None
    """Only where the local machine cannot use the AWS default (the model, the input location)."""

    def default_for(self, local: bool) -> ParameterValue:
        return self.local_default if local and self.local_default is not None else self.default


@dataclass(frozen=True)
class Param:
    """A reference to a pipeline parameter."""

    name: str


@dataclass(frozen=True)
class Config:
    """A reference to a name in ``pipelines.config.ProjectConfig`` (an attribute name)."""

    attribute: str


@dataclass(frozen=True)
class StepOutput:
    """An output an earlier step wrote: a processing output's name, or ``model`` for a training step."""

    step: str
    output: str


Value = ParameterValue | Param | Config | StepOutput


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
    description: str = ""


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
    description: str = ""


@dataclass(frozen=True)
class Condition:
    """``JsonGet(property_file, json_path) <operator> right`` decides between two branches."""

    name: str
    step: str
    property_file: str
    json_path: str
    operator: Literal[">=", ">", "<=", "<", "=="]
    right: Value
    if_true: tuple[str, ...]
    if_false: tuple[str, ...]


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


@dataclass(frozen=True)
class FailStep:
    name: str
    message: tuple[Value | str, ...]
    """Joined into the failure message; a ``StepOutput`` of a property file reads the metric it names."""


@dataclass(frozen=True)
class PipelineSpec:
    parameters: tuple[Parameter, ...]
    steps: tuple[ProcessingStep | TrainingStep, ...]
    condition: Condition
    register: RegisterStep
    fail: FailStep
    description: str = ""

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

    def step(self, name: str) -> ProcessingStep | TrainingStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"the pipeline has no step {name!r}")

    @property
    def step_names(self) -> tuple[str, ...]:
        """Every step in execution order, the condition's branches last."""
        return (
            *(step.name for step in self.steps),
            self.condition.name,
            self.register.name,
            self.fail.name,
        )


PROCESS = "ProcessReviews"
TRAIN = "TrainModel"
EVALUATE = "EvaluateModel"
CHECK = "CheckAccuracy"
REGISTER = "RegisterModel"
FAIL = "FailOnLowAccuracy"

EVALUATION_REPORT = "EvaluationReport"
EVALUATION_FILE = "evaluation.json"
ACCURACY_JSON_PATH = "metrics.accuracy.value"

PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "InputDataUrl",
        "String",
        "",
        "Raw review CSVs (a prefix or one file). Empty on AWS means the data bucket's raw-reviews prefix.",
        local_default="data/reviews_sample.csv",
    ),
    Parameter(
        "ProcessingInstanceType", "String", "ml.c5.2xlarge", "Instance type of processing and evaluation."
    ),
    Parameter(
        "ProcessingInstanceCount", "Integer", 1, "Processing instances; input files are sharded by key."
    ),
    Parameter("TrainingInstanceType", "String", "ml.g5.2xlarge", "Instance type of training."),
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
    Parameter("Epochs", "Integer", 3, "Training epochs; the best epoch on validation is kept."),
    Parameter("LearningRate", "Float", 5e-5, "Peak learning rate of AdamW."),
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
    Parameter(
        "ModelApprovalStatus",
        "String",
        "PendingManualApproval",
        "Status of a newly registered version: PendingManualApproval, Approved or Rejected.",
    ),
    Parameter(
        "DeployInstanceType", "String", "ml.m5.large", "Instance type the registered model is meant for."
    ),
)

PIPELINE = PipelineSpec(
    description="Reviews -> RoBERTa features -> fine-tuned 3-class sentiment model -> evaluation -> registry",
    parameters=PARAMETERS,
    steps=(
        ProcessingStep(
            name=PROCESS,
            description="Clean, label, split and tokenize the raw reviews; write the Feature Store records.",
            script="preprocess.py",
            instance_type=Param("ProcessingInstanceType"),
            instance_count=Param("ProcessingInstanceCount"),
            inputs=(
                ProcessingInput(
                    "raw", Param("InputDataUrl"), f"{PROCESSING_INPUT}/data", distribution="ShardedByS3Key"
                ),
            ),
            outputs=tuple(
                ProcessingOutput(name, f"{PROCESSING_OUTPUT}/{name}")
                for name in ("train", "validation", "test", "rejects", "features")
            ),
            arguments={
                "--input-data": f"{PROCESSING_INPUT}/data",
                "--output-data": PROCESSING_OUTPUT,
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
            ),
        ),
        ProcessingStep(
            name=EVALUATE,
            description="Score the test split; write evaluation.json and the confusion matrix.",
            script="evaluate.py",
            instance_type=Param("ProcessingInstanceType"),
            inputs=(
                ProcessingInput("model", StepOutput(TRAIN, "model"), f"{PROCESSING_INPUT}/model"),
                ProcessingInput("test", StepOutput(PROCESS, "test"), f"{PROCESSING_INPUT}/test"),
            ),
            outputs=(ProcessingOutput("evaluation", f"{PROCESSING_OUTPUT}/evaluation"),),
            arguments={
                "--model-path": f"{PROCESSING_INPUT}/model",
                "--test-data": f"{PROCESSING_INPUT}/test",
                "--output-data": f"{PROCESSING_OUTPUT}/evaluation",
                "--max-seq-length": Param("MaxSeqLength"),
            },
            property_files=(PropertyFile(EVALUATION_REPORT, "evaluation", EVALUATION_FILE),),
        ),
    ),
    condition=Condition(
        name=CHECK,
        step=EVALUATE,
        property_file=EVALUATION_REPORT,
        json_path=ACCURACY_JSON_PATH,
        operator=">=",
        right=Param("MinAccuracy"),
        if_true=(REGISTER,),
        if_false=(FAIL,),
    ),
    register=RegisterStep(
        name=REGISTER,
        description="Register the model version with its evaluation report, pending approval by default.",
        model=StepOutput(TRAIN, "model"),
        model_package_group=Config("model_package_group_name"),
        approval_status=Param("ModelApprovalStatus"),
        metrics_report=StepOutput(EVALUATE, "evaluation"),
        metrics_file=EVALUATION_FILE,
        content_types=("application/json", "application/jsonlines", "text/csv"),
        response_types=("application/json", "application/jsonlines"),
        inference_instance_type=Param("DeployInstanceType"),
    ),
    fail=FailStep(
        name=FAIL,
        message=(
            "Test accuracy ",
            StepOutput(EVALUATE, EVALUATION_REPORT),
            " is below MinAccuracy ",
            Param("MinAccuracy"),
            ": the model was not registered.",
        ),
    ),
)
