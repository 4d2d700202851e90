"""Where the pipeline's jobs read and write in the project's two buckets, step by step: the one S3 layout.

Both runners lay their outputs out with these functions (the SageMaker definition with the execution id as a
pipeline variable, the local runner with its own id, in its local S3 folder), and the roles' IAM patterns come
from the same functions with ``*`` for the id.

The S3 grants of the roles the jobs run as (one per job step, :mod:`model_build.step_roles`) are made from this
(the storage's ``grant_pipeline_read`` and ``grant_step_prefix_write``, ``infra/constructs/project_storage.py``,
called by ``infra/constructs/execution_role.py``): a job step may write only under its own prefixes in the artifacts
bucket, and the data bucket (raw reviews above all) is read-only to the pipeline. The keys are the ones the
definition builder (``model_build/sagemaker_pipeline.py``) gives SageMaker;
``tests/infra/test_pipeline_data_access.py`` builds the definition offline and checks every place a job writes
to, and every place it reads from, against the synthesized role of its step, so the two cannot drift apart.

Key patterns use IAM's wildcard ``*`` where a name exists only at run time (the execution id, a job name). Both
buckets are versioned, so even an overwrite inside a step's own prefix leaves the previous version behind.

What the pipeline does not write is written by other roles: the Feature Store offline store by the feature
group's role (``infra/constructs/feature_group.py``), data capture by each endpoint's role, the step code by
the build project that creates the pipeline (the CLI uploads it under ``pipeline_artifacts_prefix``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from model_build.config import ProjectConfig
from model_build.pipeline_spec import PIPELINE, PipelineSpec, ProcessingStep, RegisterStep, TrainingStep

RUNTIME_NAME = "*"
"""A path segment known only when the pipeline runs: the execution id, or a job's generated name."""

MODELS_FOLDER = "models"
"""Below ``<pipeline_artifacts_prefix>/<pipeline>``: every training job's ``OutputDataConfig.S3OutputPath``."""

PACKAGES_FOLDER = "packages"
"""Below ``<pipeline_artifacts_prefix>/<pipeline>``: ``<folder>/<execution id>/<step>/<output>`` is a package the
register step registers (:func:`served_outputs`). Not under ``models/``: the training role writes there."""

CHECKPOINTS_FOLDER = "checkpoints"
"""Below ``<pipeline_artifacts_prefix>``: ``<folder>/<execution id>`` is a training job's checkpoint location."""

CODE_FOLDER = "code"
"""Below ``<pipeline_artifacts_prefix>/<pipeline>``: ``<folder>/<digest>/...`` is the jobs' code, by content."""

ExecutionId = TypeVar("ExecutionId")
"""An execution id: a string locally and in IAM patterns, a pipeline variable in the SageMaker definition."""


@dataclass(frozen=True)
class StepWrites:
    """What one job step writes in the artifacts bucket, as IAM key patterns."""

    step: str
    outputs: tuple[str, ...]
    """Objects the job creates: its processing outputs, or its model and training output."""
    checkpoints: tuple[str, ...] = ()
    """The training job's checkpoint folder: SageMaker keeps it in sync with the container's, and a file deleted
    in the container is deleted in S3 too (developer guide, "Use checkpoints in Amazon SageMaker"), so this is
    the only place the pipeline may delete."""


@dataclass(frozen=True)
class PipelineStorage:
    """Everything the pipeline's roles may touch in S3: key patterns per bucket, reads and writes apart.

    No job queries Athena (no step script does), so neither the offline store nor Athena's results are here.
    """

    data_prefixes: tuple[str, ...]
    """Data bucket, read-only, and only by the steps that read the pipeline's input: the raw reviews."""
    artifact_prefixes: tuple[str, ...]
    """Artifacts bucket, read: the step code, every step's outputs and models."""
    steps: tuple[StepWrites, ...]
    """Per job step, in the spec's order; steps of other kinds (condition, register, fail) write nothing."""

    @property
    def data_reads(self) -> tuple[str, ...]:
        return tuple(f"{prefix}/*" for prefix in self.data_prefixes)

    @property
    def artifact_reads(self) -> tuple[str, ...]:
        return tuple(f"{prefix}/*" for prefix in self.artifact_prefixes)

    @property
    def artifact_writes(self) -> tuple[str, ...]:
        """Every key pattern some job step may create objects under."""
        keys = [key for step in self.steps for key in (*step.outputs, *step.checkpoints)]
        return tuple(dict.fromkeys(keys))

    def writes_of(self, step: str) -> StepWrites:
        """What job step ``step`` writes; a name that is no job step is an error."""
        for writes in self.steps:
            if writes.step == step:
                return writes
        raise KeyError(f"{step!r} is no job step of the pipeline: {[writes.step for writes in self.steps]}")


def listing(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """``s3:prefix`` patterns that let ``ListObjects`` see ``prefixes`` and below, and nothing else.

    A job lists its input with the prefix of its URI, with or without the trailing slash.
    """
    return tuple(pattern for prefix in prefixes for pattern in (prefix, f"{prefix}/*"))


def served_outputs(spec: PipelineSpec = PIPELINE) -> frozenset[tuple[str, str]]:
    """(step, output) of the processing outputs a register step registers as the model: a package an endpoint
    serves, so it goes under ``packages/``, which an endpoint's model may read (:func:`served_prefixes`)."""
    return frozenset(
        (step.model.step, step.model.output)
        for step in spec.steps
        if isinstance(step, RegisterStep) and isinstance(spec.step(step.model.step), ProcessingStep)
    )


def step_output_path(
    config: ProjectConfig, execution_id: ExecutionId, step: str, output: str
) -> list[str | ExecutionId]:
    """The segments of ``<artifacts prefix>/<pipeline>/<execution id>/<step>/<output>``: one folder per run and
    output, below the artifacts bucket; ``<artifacts prefix>/<pipeline>/packages/<execution id>/<step>/<output>``
    for a model package (:func:`served_outputs`)."""
    packages = [PACKAGES_FOLDER] if (step, output) in served_outputs() else []
    return [config.pipeline_artifacts_prefix, config.pipeline_name, *packages, execution_id, step, output]


def checkpoint_path(config: ProjectConfig, execution_id: ExecutionId) -> list[str | ExecutionId]:
    """The segments of ``<artifacts prefix>/checkpoints/<execution id>``: a training step's checkpoints, shared
    by the retries of one execution and by no other execution."""
    return [config.pipeline_artifacts_prefix, CHECKPOINTS_FOLDER, execution_id]


def code_prefix(config: ProjectConfig) -> str:
    """``<artifacts prefix>/<pipeline>/code``: where the build uploads the jobs' code by content."""
    return "/".join((config.pipeline_artifacts_prefix, config.pipeline_name, CODE_FOLDER))


def processing_output_key(config: ProjectConfig, step: str, output: str) -> str:
    """``<artifacts prefix>/<pipeline>/<execution id>/<step>/<output>/*``, as an IAM pattern."""
    return "/".join((*step_output_path(config, RUNTIME_NAME, step, output), RUNTIME_NAME))


def models_prefix(config: ProjectConfig) -> str:
    """``<artifacts prefix>/<pipeline>/models``: every trained model, and all an endpoint's model may read."""
    return "/".join((config.pipeline_artifacts_prefix, config.pipeline_name, MODELS_FOLDER))


def served_prefixes(config: ProjectConfig) -> tuple[str, str]:
    """Where registered models are: the training jobs' (``models/``) and the packages (``packages/``): all an
    endpoint's model may read."""
    return models_prefix(config), "/".join(
        (config.pipeline_artifacts_prefix, config.pipeline_name, PACKAGES_FOLDER)
    )


def training_output_key(config: ProjectConfig) -> str:
    """``<artifacts prefix>/<pipeline>/models/<job name>/...``: model.tar.gz, output.tar.gz, profiler output."""
    return f"{models_prefix(config)}/{RUNTIME_NAME}"


def checkpoint_key(config: ProjectConfig) -> str:
    """``<artifacts prefix>/checkpoints/<execution id>/...``: a retried job of the same execution resumes here."""
    return "/".join(checkpoint_path(config, RUNTIME_NAME))


def step_writes(config: ProjectConfig, spec: PipelineSpec = PIPELINE) -> tuple[StepWrites, ...]:
    """What each job step of ``spec`` writes; a job step of a kind not handled here is an error."""
    found: list[StepWrites] = []
    for step in spec.steps:
        if isinstance(step, ProcessingStep):
            outputs = tuple(processing_output_key(config, step.name, output.name) for output in step.outputs)
            found.append(StepWrites(step.name, outputs))
        elif isinstance(step, TrainingStep):
            checkpoints = (checkpoint_key(config),) if step.checkpoints else ()
            found.append(StepWrites(step.name, (training_output_key(config),), checkpoints))
        elif step.kind not in ("Condition", "RegisterModel", "Fail"):
            raise ValueError(
                f"model_build/storage_layout.py: step {step.name!r} of kind {step.kind!r} is not known here; "
                "say where it writes, or its role will not let it"
            )
    return tuple(found)


def pipeline_storage(config: ProjectConfig, spec: PipelineSpec = PIPELINE) -> PipelineStorage:
    def clean(prefix: str) -> str:
        return prefix.strip("/")

    return PipelineStorage(
        data_prefixes=(clean(config.raw_reviews_prefix),),
        artifact_prefixes=(clean(config.pipeline_artifacts_prefix),),
        steps=step_writes(config, spec),
    )
