"""The model-build pipeline on SageMaker (SDK v3), built from ``model_build.pipeline_spec`` and nothing else.

Every parameter, step, argument, channel, metric regex, the conditions, the registration and the failure
message come from :data:`~model_build.pipeline_spec.PIPELINE`; this module only translates them, with one
builder method per step kind (:attr:`_PipelineBuilder.builders`; an unknown kind is an error). Over 600 lines
for the local runner's reason: the builders share the parameters, the property files and the code uploads. A condition's
branch steps are nested in its ``ConditionStep``; every other step is a step of the ``Pipeline``.

- ``Param`` -> the ``sagemaker.core.workflow`` parameter of that name (same type and default; the empty
  ``InputDataUrl`` default becomes the data bucket's raw-reviews prefix, as the spec documents),
- ``Config`` -> the value in :class:`model_build.config.ProjectConfig`,
- ``StepOutput`` -> the earlier step's properties (a processing output's ``S3Uri``, a training job's
  ``ModelArtifacts.S3ModelArtifacts``); ``JsonValue`` -> a ``JsonGet`` on the step's property file,
- a literal folder of the repository (``model_deploy/serving``) -> a local folder the SDK uploads.

How the code reaches the jobs: processing and evaluation run ``FrameworkProcessor`` with
``source_dir=model_build/steps`` and ``requirements=requirements.txt``; the SDK uploads the folder as
``sourcedir.tar.gz`` plus a ``runproc.sh`` that unpacks it, pip installs the pinned requirements and runs
``python3 <script> <arguments>``. Training runs ``ModelTrainer`` with ``SourceCode(source_dir=...,
entry_script="train.py", requirements="requirements.txt")``, whose driver installs the same file and passes
the hyperparameters as ``--name value``. Every image comes from :mod:`model_build.images`: the PyTorch DLC of
the project's one framework version, CPU or GPU as the step's instance type (its value in this definition:
the default, or the ``defaults`` it is built with) says.

Caching: every job's code is uploaded under a key named by its content (:mod:`model_build.code_upload`), and
data inputs are parameters or earlier steps' per-execution outputs, so building the definition again from the
same code gives the same step arguments, and SageMaker's step cache hits; the processing job carries the
``InputDataFingerprint`` the runner computes (:mod:`model_build.data_fingerprint`), so new data under the
same ``InputDataUrl`` is a miss. Retries: each job step carries the
retry policies its spec declares (:data:`model_build.pipeline_spec.JOB_RETRIES`: throttling and service
faults, capacity and resource limits, with exponential backoff).

Training always runs under the ``Torchrun`` driver: the instance count is a pipeline parameter, known only
at execution time, and ``torchrun`` starts one process per GPU (one on a CPU instance) on each of
``TrainingInstanceCount`` nodes, so a single-device, single-node run is a plain one-process run.

Importing this module imports the SageMaker SDK (slow, needs a region); the local mode never imports it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_build import images
from model_build.code_upload import CodeSet, CodeUploads
from model_build.config import ProjectConfig, load_config
from model_build.pipeline_spec import (
    EXPERIMENT_TRACKING,
    MLFLOW_RUN_PARAMETER,
    PIPELINE,
    STEPS_SOURCE_DIR,
    ConditionStep,
    Config,
    FailStep,
    JsonValue,
    Param,
    Parameter,
    PipelineSpec,
    ProcessingStep,
    RegisterStep,
    RetryPolicy,
    StepOutput,
    TrainingStep,
    TuningStep,
)
from model_build.step_roles import step_role_arns
from model_build.steps import tracking
from model_build.storage_layout import checkpoint_path, code_prefix, models_prefix, step_output_path

if TYPE_CHECKING:
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow import Pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_REQUIREMENTS = "requirements.txt"
"""Relative to ``STEPS_SOURCE_DIR``: what every job pip installs on top of the image."""

ROLE_ARN_VARIABLE = "SAGEMAKER_PIPELINE_ROLE_ARN"
ARTIFACT_BUCKET_VARIABLE = "ARTIFACT_BUCKET"
SDK_VALIDATE_ROLE_VARIABLE = "SAGEMAKER_VALIDATE_ROLE"
"""The SageMaker SDK's switch for its client-side IAM role check (``resolve_and_validate_role``)."""
DATA_BUCKET_VARIABLE = "DATA_BUCKET"
TRACKING_SERVER_VARIABLE = "MLFLOW_TRACKING_SERVER_ARN"
"""The project's SageMaker managed MLflow tracking server (the registry stack's ``MlflowTrackingServerArn``
output; the build project passes it). Unset: the jobs log nothing to MLflow on AWS."""

CACHE_EXPIRY = "P30D"
METRICS_CONTENT_TYPE = "application/json"
MAX_TRAINING_SECONDS = 6 * 3600
TUNING_JOB_PREFIX = "tune"
"""Tuning job names: SageMaker allows 32 characters, the SDK adds a timestamp to the prefix."""
"""Fine-tuning roberta-base on the full reviews set takes well over the SDK's one-hour default."""
SERVING_ENTRY_POINT = "inference.py"
"""The handler in ``SERVING_SOURCE_DIR``; training packs that folder into ``model.tar.gz/code``."""

# ModelTrainer mounts its source bundle as the channel ``code`` and its drivers as ``sm_drivers``
# (sagemaker.core.training.constants.SM_CODE / SM_DRIVERS); a spec channel may not reuse those names.
RESERVED_TRAINING_CHANNELS = frozenset({"code", "sm_drivers"})


@dataclass(frozen=True)
class AwsSettings:
    """Where the pipeline runs: the region, the roles and buckets CDK created (or CodeBuild passes)."""

    region: str
    role_arn: str
    """The execution role: the pipeline's own, and its RegisterModel step's."""
    artifact_bucket: str
    data_bucket: str
    step_role_arns: Mapping[str, str] = field(default_factory=dict)
    """Job step name -> the role its jobs run as (:mod:`model_build.step_roles`); a step not here runs as
    ``role_arn``."""
    tracking_server_arn: str = ""
    """The MLflow tracking server the jobs that declare experiment tracking log to; empty: none."""

    serving_instance_types: tuple[str, ...] = ()
    """The instance types the deploy stages serve on (``endpoint.instance_type`` of each stage file, which the
    caller reads: model_build does not import model_deploy). Registered besides ``DeployInstanceType`` in
    ``SupportedRealtimeInferenceInstanceTypes``, so the deploy can check a version against its stage. They are
    fixed when the definition is built: SageMaker's pipeline parameters are scalars, and a list cannot be one."""

    def job_role_arn(self, step: str) -> str:
        return self.step_role_arns.get(step, self.role_arn)

    def input_data_url(self, config: ProjectConfig) -> str:
        """What an empty ``InputDataUrl`` means on AWS: the raw-reviews prefix of the data bucket."""
        return f"s3://{self.data_bucket}/{config.raw_reviews_prefix.strip('/')}/"


def aws_settings(
    config: ProjectConfig,
    boto_session: boto3.Session,
    environ: Mapping[str, str] = os.environ,
    require_role: bool = True,
) -> AwsSettings:
    """Read the settings CodeBuild passes; derive what is missing the way the CDK stacks name it.

    ``SAGEMAKER_PIPELINE_ROLE_ARN`` is the execution role; without it, ``require_role=True`` is an error
    and otherwise the ARN of ``config.execution_role_name`` in this account is used. ``ARTIFACT_BUCKET`` and
    ``DATA_BUCKET`` default to ``<prefix>-<account>-<region>``. The account is read from STS only when one
    of the three is missing. The job steps' roles are named by the config (``step_role_name``) in the
    execution role's account, as CDK creates them: no variable names them.
    """
    role_arn = environ.get(ROLE_ARN_VARIABLE, "")
    if not role_arn and require_role:
        raise ValueError(
            f"{ROLE_ARN_VARIABLE} is not set: export the ARN of the SageMaker execution role the pipeline "
            f"runs as (the CDK stack outputs it; the build project passes it to CodeBuild)"
        )
    if role_arn:
        _partition_and_account(role_arn)  # a malformed ARN is reported before any AWS call
    artifact_bucket = environ.get(ARTIFACT_BUCKET_VARIABLE, "")
    data_bucket = environ.get(DATA_BUCKET_VARIABLE, "")
    region = boto_session.region_name or config.region
    if not (role_arn and artifact_bucket and data_bucket):
        account = boto_session.client("sts", region_name=region).get_caller_identity()["Account"]
        role_arn = role_arn or f"arn:aws:iam::{account}:role/{config.execution_role_name}"
        artifact_bucket = artifact_bucket or f"{config.artifacts_bucket_prefix}-{account}-{region}"
        data_bucket = data_bucket or f"{config.data_bucket_prefix}-{account}-{region}"
    partition, account = _partition_and_account(role_arn)
    return AwsSettings(
        region,
        role_arn,
        artifact_bucket,
        data_bucket,
        step_role_arns(config, account, partition),
        environ.get(TRACKING_SERVER_VARIABLE, "").strip(),
    )


def _partition_and_account(role_arn: str) -> tuple[str, str]:
    """``arn:<partition>:iam::<account>:role/...`` -> (partition, account); anything else is an error."""
    parts = role_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[5].startswith("role/"):
        raise ValueError(
            f"{ROLE_ARN_VARIABLE}={role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/...)"
        )
    return parts[1], parts[4]


def pipeline_session(
    settings: AwsSettings, config: ProjectConfig, boto_session: boto3.Session, sagemaker_client: Any = None
):
    """A ``PipelineSession`` whose default bucket/prefix is where the pipeline's artifacts belong.

    ``sagemaker_client`` replaces the one the session would create (tests pass a stubbed client).
    """
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    return PipelineSession(
        boto_session=boto_session,
        sagemaker_client=sagemaker_client,
        default_bucket=settings.artifact_bucket,
        default_bucket_prefix=config.pipeline_artifacts_prefix,
    )


def parse_parameter_overrides(overrides: Mapping[str, str], spec: PipelineSpec = PIPELINE) -> dict[str, Any]:
    """``--param K=V`` strings -> values of each parameter's type, parsed as the local mode parses them.

    An unknown name raises ``KeyError`` listing the known ones; a bad value, or one out of its range with
    the defaults (:meth:`PipelineSpec.value_problems`), a ``ValueError`` naming it.
    """
    from model_build.parameters import parse_value, resolve

    parsed = {name: parse_value(spec.parameter(name), text) for name, text in overrides.items()}
    resolve(spec, parsed, local=False)
    return parsed


def build_pipeline(
    settings: AwsSettings,
    session: PipelineSession,
    config: ProjectConfig | None = None,
    defaults: Mapping[str, Any] | None = None,
    spec: PipelineSpec = PIPELINE,
) -> Pipeline:
    """The SageMaker ``Pipeline`` of ``spec``; ``defaults`` replace parameter defaults in the definition."""
    return _PipelineBuilder(spec, config or load_config(), settings, session, defaults or {}).build()


class _PipelineBuilder:
    """Turns the spec into SDK objects, one step at a time, in the spec's order."""

    def __init__(
        self,
        spec: PipelineSpec,
        config: ProjectConfig,
        settings: AwsSettings,
        session: PipelineSession,
        defaults: Mapping[str, Any],
    ) -> None:
        self.spec = spec
        self.config = config
        self.settings = settings
        self.session = session
        self.source_dir = REPO_ROOT / STEPS_SOURCE_DIR
        if not (self.source_dir / STEPS_REQUIREMENTS).is_file():
            raise FileNotFoundError(
                f"{STEPS_SOURCE_DIR}/{STEPS_REQUIREMENTS} is missing: every SageMaker job installs it"
            )
        self.parameters = {p.name: self._parameter(p, defaults) for p in spec.parameters}
        self.code = CodeUploads(
            session.boto_session.client("s3", region_name=settings.region),
            settings.artifact_bucket,
            code_prefix(config),
        )
        self.steps: dict[str, Any] = {}
        self.property_files: dict[tuple[str, str], Any] = {}

    # --- values
    def _parameter(self, parameter: Parameter, defaults: Mapping[str, Any]):
        from sagemaker.core.workflow.parameters import (
            ParameterBoolean,
            ParameterFloat,
            ParameterInteger,
            ParameterString,
        )

        default = defaults.get(parameter.name, parameter.default)
        if parameter.input_data and default == "":
            default = self.settings.input_data_url(self.config)
        factory = {
            "String": ParameterString,
            "Integer": ParameterInteger,
            "Float": ParameterFloat,
            "Boolean": ParameterBoolean,
        }[parameter.type]
        if parameter.choices:
            return ParameterString(
                name=parameter.name, default_value=default, enum_values=list(parameter.choices)
            )
        return factory(name=parameter.name, default_value=default)

    def resolve(self, value: Any) -> Any:
        """A spec value -> what the SDK takes: a parameter, a config value, a step property or a literal."""
        if isinstance(value, Param):
            return self.parameters[value.name]
        if isinstance(value, Config):
            return getattr(self.config, value.attribute)
        if isinstance(value, StepOutput):
            return self._step_output(value)
        if isinstance(value, JsonValue):
            return self._json_get(value)
        return value

    def default_of(self, value: Any) -> Any:
        """A concrete value where the SDK needs one at build time: a parameter's default in this definition."""
        if isinstance(value, Param):
            return self.parameters[value.name].default_value
        return self.resolve(value)

    def resolve_string(self, value: Any) -> Any:
        """Like :meth:`resolve`, for fields the API types as strings (container arguments, hyperparameters)."""
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return str(resolved).lower()
        if isinstance(resolved, int | float):
            return str(resolved)
        if hasattr(resolved, "to_string"):
            return resolved.to_string()
        return resolved

    def _step_output(self, output: StepOutput) -> Any:
        if output.step not in self.steps:
            raise ValueError(f"{output} refers to a step that does not run before it")
        step = self.steps[output.step]
        spec_step = self.spec.step(output.step)
        if isinstance(spec_step, TrainingStep):
            if output.output != "model":
                raise ValueError(f"{output}: a training step's only output is 'model'")
            if isinstance(spec_step, TuningStep) and self.default_of(spec_step.max_jobs):
                # The best job's artifact, where ModelTrainer's OutputDataConfig puts every job's.
                return step.get_top_model_s3_uri(
                    top_k=0,
                    s3_bucket=self.settings.artifact_bucket,
                    prefix=models_prefix(self.config),
                )
            return step.properties.ModelArtifacts.S3ModelArtifacts
        return step.properties.ProcessingOutputConfig.Outputs[output.output].S3Output.S3Uri

    def _json_get(self, value: JsonValue) -> Any:
        from sagemaker.core.workflow.functions import JsonGet

        property_file = self.property_files.get((value.step, value.property_file))
        if value.step not in self.steps or property_file is None:
            raise ValueError(f"{value}: no earlier step {value.step} with that property file")
        return JsonGet(step_name=value.step, property_file=property_file, json_path=value.json_path)

    def _output_uri(self, step_name: str, output_name: str):
        """``s3://<artifacts>/<prefix>/<pipeline>/<execution id>/<step>/<output>``: one folder per run."""
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        execution_id = ExecutionVariables.PIPELINE_EXECUTION_ID
        return Join(
            on="/",
            values=[
                "s3:/",
                self.settings.artifact_bucket,
                *step_output_path(self.config, execution_id, step_name, output_name),
            ],
        )

    def _environment(self, step: ProcessingStep | TrainingStep, trial: bool = False) -> dict[str, Any]:
        """A job's environment: the step's own, and the execution's MLflow run where the step logs to it.

        The run id is a parameter (``MlflowRunId``, which ``pipelines run --sagemaker`` fills in), so these
        steps are cache hits only for an execution of the same run, never another's: a reused result would
        leave this execution's run without its numbers. A tuning trial logs into a child run of it.
        """
        environment = {name: self.resolve_string(value) for name, value in step.environment.items()}
        if EXPERIMENT_TRACKING in step.services and self.settings.tracking_server_arn:
            environment[tracking.TRACKING_URI_VARIABLE] = self.settings.tracking_server_arn
            environment[tracking.RUN_ID_VARIABLE] = self.resolve_string(Param(MLFLOW_RUN_PARAMETER))
            if trial:
                environment[tracking.TRIAL_VARIABLE] = "1"  # the child run takes the job's name
        return environment

    def _cache(self):
        from sagemaker.mlops.workflow import CacheConfig

        return CacheConfig(enable_caching=True, expire_after=CACHE_EXPIRY)

    def _step_code(self, script: str) -> CodeSet:
        """What a job needs of the steps folder: its script, the modules it imports, the requirements."""
        return CodeSet.script(self.source_dir, script, always=(STEPS_REQUIREMENTS,))

    def _image(self, instance_type: Any, scope: images.Scope) -> str:
        """The image for the instance type this definition runs the step on (see the module doc)."""
        return images.image_uri(self.settings.region, str(self.default_of(instance_type)), scope)

    def _retry_policies(self, policies: tuple[RetryPolicy, ...]) -> list[Any]:
        from sagemaker.mlops.workflow.retry import (
            SageMakerJobExceptionTypeEnum,
            SageMakerJobStepRetryPolicy,
            StepExceptionTypeEnum,
            StepRetryPolicy,
        )

        built: list[Any] = []
        for policy in policies:
            timing = {
                "interval_seconds": policy.interval_seconds,
                "backoff_rate": policy.backoff_rate,
                "max_attempts": policy.max_attempts,
            }
            # By value: the enums' member names differ from the API's strings (INTERNAL_ERROR, ...).
            if policy.family == "Step":
                step_types = {member.value: member for member in StepExceptionTypeEnum}
                built.append(StepRetryPolicy([step_types[reason] for reason in policy.on], **timing))
            else:
                job_types = {member.value: member for member in SageMakerJobExceptionTypeEnum}
                built.append(
                    SageMakerJobStepRetryPolicy(
                        failure_reason_types=[job_types[reason] for reason in policy.on], **timing
                    )
                )
        return built

    # --- steps
    @property
    def builders(self) -> dict[str, Any]:
        """Step kind -> the method that makes its SDK step."""
        return {
            ProcessingStep.kind: self._processing_step,
            TrainingStep.kind: self._training_step,
            TuningStep.kind: self._tuning_step,
            ConditionStep.kind: self._condition_step,
            RegisterStep.kind: self._register_step,
            FailStep.kind: self._fail_step,
        }

    def build(self) -> Pipeline:
        from sagemaker.mlops.workflow import Pipeline

        # Conditions nest their branch steps, so they are built last, the innermost (latest) first; every
        # other step only reads steps listed before it.
        for step in self.spec.steps:
            if not isinstance(step, ConditionStep):
                self.steps[step.name] = self._build(step)
        for step in reversed(self.spec.steps):
            if isinstance(step, ConditionStep):
                self.steps[step.name] = self._build(step)
        return Pipeline(
            name=self.config.pipeline_name,
            parameters=list(self.parameters.values()),
            steps=[self.steps[step.name] for step in self.spec.top_level],
            sagemaker_session=self.session,
        )

    def _build(self, step: Any) -> Any:
        builder = self.builders.get(step.kind)
        if builder is None:
            raise ValueError(f"pipeline_spec: no SageMaker builder for step kind {step.kind!r} ({step.name})")
        return builder(step)

    def _processing_step(self, step: ProcessingStep):
        from sagemaker.core.processing import FrameworkProcessor
        from sagemaker.core.shapes import (
            ProcessingInput,
            ProcessingOutput,
            ProcessingS3Input,
            ProcessingS3Output,
        )
        from sagemaker.core.workflow.properties import PropertyFile
        from sagemaker.mlops.workflow import ProcessingStep as SdkProcessingStep

        processor = FrameworkProcessor(
            image_uri=self._image(step.instance_type, "training"),
            role=self.settings.job_role_arn(step.name),
            instance_type=self.resolve(step.instance_type),
            instance_count=self.resolve(step.instance_count),
            command=["python3"],
            base_job_name=f"{self.config.prefix}-{step.name}",
            sagemaker_session=self.session,
            tags=[{"Key": key, "Value": value} for key, value in self.config.tags.items()],
            env=self._environment(step) or None,
        )
        inputs = [
            ProcessingInput(
                input_name=item.name,
                s3_input=ProcessingS3Input(
                    s3_uri=self.resolve(item.source),
                    local_path=item.destination,
                    s3_data_type="S3Prefix",
                    s3_input_mode="File",
                    s3_data_distribution_type=item.distribution,
                ),
            )
            for item in step.inputs
        ]
        outputs = [
            ProcessingOutput(
                output_name=item.name,
                s3_output=ProcessingS3Output(
                    s3_uri=self._output_uri(step.name, item.name),
                    local_path=item.source,
                    s3_upload_mode="EndOfJob",
                ),
            )
            for item in step.outputs
        ]
        arguments: list[Any] = []
        for flag, value in step.arguments.items():
            arguments += [flag, self.resolve_string(value)]
        property_files = [
            PropertyFile(name=item.name, output_name=item.output, path=item.path)
            for item in step.property_files
        ]
        for property_file in property_files:
            self.property_files[(step.name, property_file.name)] = property_file
        # The code bundle is uploaded by content; the SDK puts its helper scripts (install_requirements.py,
        # runproc.sh) under the job name, which therefore carries the same digest.
        code = self._step_code(step.script)
        step_args = processor.run(
            code=step.script,
            source_dir=self.code.bundle(code),
            requirements=STEPS_REQUIREMENTS,
            inputs=inputs,
            outputs=outputs,
            arguments=arguments,
            job_name=f"{step.name}-{code.digest}",
        )
        return SdkProcessingStep(
            name=step.name,
            step_args=step_args,
            description=step.description or None,
            property_files=property_files or None,
            cache_config=self._cache(),
            retry_policies=self._retry_policies(step.retries),
            depends_on=[self.steps[name] for name in step.depends_on] or None,
        )

    def _training_step(self, step: TrainingStep):
        from sagemaker.mlops.workflow import TrainingStep as SdkTrainingStep

        trainer, channels = self._trainer(step)
        return SdkTrainingStep(
            name=step.name,
            step_args=trainer.train(input_data_config=channels),
            description=step.description or None,
            cache_config=self._cache(),
            retry_policies=self._retry_policies(step.retries),
        )

    def _tuning_step(self, step: TuningStep):
        """A hyperparameter tuning job over the step's trainer, or plain training (see :class:`TuningStep`).

        Bayesian search of the spec's ranges, maximizing the objective metric SageMaker reads from each job's
        log (its latest value: the kept epoch's), with early stopping and the run's seed. The best job's
        model is what later steps read (:meth:`_step_output`).
        """
        from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter
        from sagemaker.mlops.workflow import TuningStep as SdkTuningStep
        from sagemaker.train.tuner import HyperparameterTuner

        if not self.default_of(step.max_jobs):
            return self._training_step(step)
        scaling = {"Linear": "Linear", "Logarithmic": "Logarithmic"}
        ranges: dict[str, Any] = {}
        for search_range in step.ranges:
            if search_range.kind == "Continuous":
                ranges[search_range.hyperparameter] = ContinuousParameter(
                    search_range.low, search_range.high, scaling_type=scaling[search_range.scaling]
                )
            elif search_range.kind == "Integer":
                ranges[search_range.hyperparameter] = IntegerParameter(
                    int(search_range.low), int(search_range.high), scaling_type=scaling[search_range.scaling]
                )
            else:
                ranges[search_range.hyperparameter] = CategoricalParameter(list(search_range.values))
        trainer, channels = self._trainer(step, tuning=True)
        tuner = HyperparameterTuner(
            model_trainer=trainer,
            objective_metric_name=step.objective,
            objective_type="Maximize",
            hyperparameter_ranges=ranges,
            metric_definitions=[{"Name": name, "Regex": regex} for name, regex in step.metric_definitions],
            strategy="Bayesian",
            # Numbers when the definition is built: the SDK's ResourceLimits refuses pipeline variables.
            max_jobs=int(self.default_of(step.max_jobs)),
            max_parallel_jobs=int(self.default_of(step.max_parallel_jobs)),
            early_stopping_type="Auto" if step.early_stopping else "Off",
            random_seed=self.resolve(step.random_seed),
            base_tuning_job_name=TUNING_JOB_PREFIX,
            tags=[{"Key": key, "Value": value} for key, value in self.config.tags.items()],
        )
        return SdkTuningStep(
            name=step.name,
            step_args=tuner.tune(inputs=channels),
            description=step.description or None,
            cache_config=self._cache(),
            retry_policies=self._retry_policies(step.retries),
        )

    def _trainer(self, step: TrainingStep, tuning: bool = False) -> tuple[Any, list[Any]]:
        """The step's ``ModelTrainer`` and its input channels: what a training and a tuning job share.

        A tuning job differs in two ways. Its API takes no container entry point, so the image's own
        (the SageMaker training toolkit's script mode) runs the script: the code goes as a ``tar.gz`` that
        the toolkit unpacks into ``/opt/ml/code`` (``sagemaker_submit_directory``), pip installs its
        requirements, and runs the script with ``--name value`` hyperparameters in one process per instance.
        And it has no checkpoints: the trials would share the execution's one folder, and a trial would
        then find another's state (which the script refuses); a retried trial starts over.
        """
        from sagemaker.core.training.configs import (
            CheckpointConfig,
            Compute,
            InputData,
            MetricDefinition,
            OutputDataConfig,
            SourceCode,
            StoppingCondition,
        )
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join
        from sagemaker.train.distributed import Torchrun

        reserved = RESERVED_TRAINING_CHANNELS.intersection(step.channels)
        if reserved:
            raise ValueError(
                f"pipeline_spec: step {step.name!r} has channel(s) {sorted(reserved)}, names that "
                f"SageMaker's ModelTrainer reserves for its own source and driver channels; rename them "
                f"in model_build/pipeline_spec.py (and in the script that reads SM_CHANNEL_<NAME>)"
            )
        artifacts = f"s3://{self.settings.artifact_bucket}"
        # The bucket and the first segment joined, as the definition has always had it: its cache key stays.
        prefix, *checkpoints = checkpoint_path(self.config, ExecutionVariables.PIPELINE_EXECUTION_ID)
        # The step roles are minimal by design (no VPC, no CloudWatch metrics): the SDK's client-side check
        # of a training role (iam:SimulatePrincipalPolicy) refuses them for any caller allowed to simulate.
        # ModelTrainer takes no argument to skip it, only this variable, so it is set around the build.
        with _sdk_role_validation_off():
            trainer = _content_addressed_trainer()(
                training_image=self._image(step.instance_type, "training"),
                role=self.settings.job_role_arn(step.name),
                sagemaker_session=self.session,
                base_job_name=f"{self.config.prefix}-{step.name}",
                source_code=SourceCode(
                    # An S3 folder, which ModelTrainer recognises by its trailing "/".
                    source_dir=self.code.bundle(self._step_code(step.script))
                    if tuning
                    else self.code.folder(self._step_code(step.script), "code") + "/",
                    entry_script=step.script,
                    requirements=STEPS_REQUIREMENTS,
                ),
                distributed=Torchrun(),
                compute=Compute(
                    instance_type=self.resolve(step.instance_type),
                    instance_count=self.resolve(step.instance_count),
                ),
                hyperparameters={
                    name: self.resolve_string(value) for name, value in step.hyperparameters.items()
                },
                environment=self._environment(step, trial=tuning),
                output_data_config=OutputDataConfig(
                    s3_output_path=f"{artifacts}/{models_prefix(self.config)}"
                ),
                # One checkpoint folder per execution: a retried or interrupted job resumes from it, a new
                # execution (perhaps with other hyperparameters) starts from the pretrained model.
                checkpoint_config=CheckpointConfig(
                    s3_uri=Join(
                        on="/",
                        values=[f"{artifacts}/{prefix}", *checkpoints],
                    ),
                    local_path="/opt/ml/checkpoints",
                )
                if step.checkpoints and not tuning
                else None,
                stopping_condition=StoppingCondition(max_runtime_in_seconds=MAX_TRAINING_SECONDS),
                tags=[{"key": key, "value": value} for key, value in self.config.tags.items()],
            ).with_metric_definitions(
                [MetricDefinition(name=name, regex=regex) for name, regex in step.metric_definitions]
            )
        trainer.use_code_uploads(self.code)
        channels = [
            InputData(channel_name=name, data_source=self._channel_source(name, source))
            for name, source in step.channels.items()
        ]
        return trainer, channels

    def _channel_source(self, channel: str, value: Any) -> Any:
        """Channel data: a repository folder goes to S3 by content (a tuning job takes no local path; the
        trainer's own upload would name it after the job), the rest resolves."""
        if isinstance(value, str) and (REPO_ROOT / value).is_dir():
            return self.code.folder(CodeSet.folder(REPO_ROOT / value), channel)
        return self.resolve(value)

    def _condition_step(self, spec: ConditionStep):
        from sagemaker.core.workflow.conditions import (
            ConditionEquals,
            ConditionGreaterThan,
            ConditionGreaterThanOrEqualTo,
            ConditionLessThan,
            ConditionLessThanOrEqualTo,
        )
        from sagemaker.mlops.workflow import ConditionStep as SdkConditionStep

        comparisons = {
            ">=": ConditionGreaterThanOrEqualTo,
            ">": ConditionGreaterThan,
            "<=": ConditionLessThanOrEqualTo,
            "<": ConditionLessThan,
            "==": ConditionEquals,
        }
        return SdkConditionStep(
            name=spec.name,
            conditions=[
                comparisons[check.operator](left=self._json_get(check.left), right=self.resolve(check.right))
                for check in spec.checks
            ],
            if_steps=[self.steps[name] for name in spec.if_true],
            else_steps=[self.steps[name] for name in spec.if_false],
        )

    def _register_step(self, spec: RegisterStep):
        from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow import ModelStep
        from sagemaker.serve.model_builder import ModelBuilder

        deploy_instance_type = self.resolve(spec.inference_instance_type)
        serving_image = self._image(spec.inference_instance_type, "inference")
        instance_types = [deploy_instance_type, *self._serving_instance_types(spec, serving_image)]
        builder = ModelBuilder(
            image_uri=serving_image,
            s3_model_data_url=(
                Join(on="/", values=[self.resolve(spec.model), spec.model_file])
                if spec.model_file
                else self.resolve(spec.model)
            ),
            role_arn=self.settings.role_arn,
            sagemaker_session=self.session,
            instance_type=str(self.default_of(spec.inference_instance_type)),
            dependencies={"auto": False},  # the handler ships inside model.tar.gz/code
            env_vars={
                "SAGEMAKER_PROGRAM": SERVING_ENTRY_POINT,
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
        )
        report = Join(on="/", values=[self.resolve(spec.metrics_report), spec.metrics_file])
        data_report, data_figures = self._data_report(spec)
        step_args = builder.register(
            model_package_group_name=self.resolve(spec.model_package_group),
            content_types=list(spec.content_types),
            response_types=list(spec.response_types),
            inference_instances=instance_types,
            transform_instances=[deploy_instance_type],
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(content_type=METRICS_CONTENT_TYPE, s3_uri=report),
                bias_pre_training=data_report,
            ),
            customer_metadata_properties={**data_figures, **self._run_metadata()} or None,
            approval_status=self.resolve(spec.approval_status),
        )
        return ModelStep(name=spec.name, step_args=step_args, description=spec.description or None)

    def _serving_instance_types(self, spec: RegisterStep, serving_image: str) -> list[str]:
        """The stages' instance types other than ``DeployInstanceType``'s default, each checked to run the
        image the version is registered with (CPU with CPU, GPU with GPU)."""
        default = str(self.default_of(spec.inference_instance_type))
        extra = [t for t in dict.fromkeys(self.settings.serving_instance_types) if t != default]
        for instance_type in extra:
            try:
                images.check_fits(serving_image, instance_type)
            except images.ImageMismatch as error:
                raise ValueError(
                    f"a deploy stage serves on {instance_type}, which the image registered for "
                    f"DeployInstanceType={default} cannot run: {error}. Make the stages' endpoint.instance_type "
                    "and DeployInstanceType the same kind (CPU or GPU)"
                ) from None
        return extra

    def _run_metadata(self) -> dict[str, Any]:
        """The execution's MLflow run id on the version (``registry describe`` links to the run)."""
        if MLFLOW_RUN_PARAMETER not in self.parameters or not self.settings.tracking_server_arn:
            return {}
        return {MLFLOW_RUN_PARAMETER: self.parameters[MLFLOW_RUN_PARAMETER]}

    def _data_report(self, spec: RegisterStep) -> tuple[Any, dict[str, Any]]:
        """The data check's report as the pre-training bias report, and its figures as metadata (text)."""
        from sagemaker.core.model_metrics import MetricsSource
        from sagemaker.core.workflow.functions import Join, JsonGet

        if spec.data_report is None:
            return None, {}
        report = MetricsSource(
            content_type=METRICS_CONTENT_TYPE,
            s3_uri=Join(on="/", values=[self.resolve(spec.data_report), spec.data_report_file]),
        )
        property_file = next(
            (
                property_file
                for (step, _), property_file in self.property_files.items()
                if step == spec.data_report.step and property_file.output_name == spec.data_report.output
            ),
            None,
        )
        if property_file is None:
            return report, {}
        figures = {
            key: Join(
                on="",
                values=[
                    JsonGet(step_name=spec.data_report.step, property_file=property_file, json_path=path)
                ],
            )
            for key, path in spec.data_report_metadata
        }
        return report, figures

    def _fail_step(self, spec: FailStep):
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow import FailStep as SdkFailStep

        return SdkFailStep(
            name=spec.name,
            error_message=Join(on="", values=[self.resolve(part) for part in spec.message]),
        )


@contextlib.contextmanager
def _sdk_role_validation_off() -> Iterator[None]:
    """``SAGEMAKER_VALIDATE_ROLE=false`` while in the block, then as it was (the SDK reads it per call)."""
    before = os.environ.get(SDK_VALIDATE_ROLE_VARIABLE)
    os.environ[SDK_VALIDATE_ROLE_VARIABLE] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SDK_VALIDATE_ROLE_VARIABLE, None)
        else:
            os.environ[SDK_VALIDATE_ROLE_VARIABLE] = before


@functools.cache
def _content_addressed_trainer() -> type:
    """``ModelTrainer`` whose local channels (the code, its drivers, a repository folder) go to S3 by content.

    ``ModelTrainer.create_input_data_channel`` (public; every channel, the SDK's own ``code`` and ``sm_drivers``
    included, is made by it) uploads a local folder under ``<job name>-<timestamp>/input/<channel>``; here
    the folder is uploaded by :class:`~model_build.code_upload.CodeUploads` first and the channel made from
    its S3 URI, so the training step's arguments change only when a file does. Made on first use: the SDK is
    imported only when a SageMaker definition is built.
    """
    from sagemaker.train import ModelTrainer

    class ContentAddressedModelTrainer(ModelTrainer):
        _code_uploads: CodeUploads | None = None  # a pydantic private attribute (leading underscore)

        def use_code_uploads(self, uploads: CodeUploads) -> None:
            self._code_uploads = uploads

        def create_input_data_channel(self, channel_name: str, data_source: Any, *args: Any, **kwargs: Any):
            if self._code_uploads is not None and isinstance(data_source, str) and Path(data_source).is_dir():
                data_source = self._code_uploads.folder(CodeSet.folder(Path(data_source)), channel_name)
            return super().create_input_data_channel(channel_name, data_source, *args, **kwargs)

    return ContentAddressedModelTrainer
