"""The role each job step of the SageMaker pipeline runs as, and what the step does that its role must allow.

Every job step of the spec (:data:`~model_build.pipeline_spec.PIPELINE`: processing and training) gets a role of
its own, named by :meth:`model_build.config.ProjectConfig.step_role_name`, so a job can reach only what its step
needs: CheckData cannot write the features, TrainModel cannot put records into the feature group, EvaluateModel
cannot touch the raw reviews. The pipeline itself (and its RegisterModel step) runs as the execution role,
which passes these roles to the jobs. Both the CDK roles (``infra/constructs/execution_role.py``) and the
definition builder (``model_build/sagemaker_pipeline.py``) are made from :func:`step_roles`, so the role a job
names is the role that holds its grants.

What a step needs is read from the spec, not from a list of step names: its writes from
:func:`model_build.storage_layout.step_writes`, whether it reads the pipeline's input (a data input that is a
parameter, ``InputDataUrl``: the raw reviews) from its inputs, and whether it puts Feature Store records from
the services it declares (:data:`~model_build.pipeline_spec.FEATURE_STORE`, which its script's
``FeatureStoreIngestor`` uses), and whether it logs to the project's MLflow tracking server the same way
(:data:`~model_build.pipeline_spec.EXPERIMENT_TRACKING`). No step script queries Athena or reads the Glue catalog, so no role may.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_build.config import ProjectConfig
from model_build.pipeline_spec import (
    EXPERIMENT_TRACKING,
    FEATURE_STORE,
    PIPELINE,
    Param,
    PipelineSpec,
    ProcessingStep,
    TrainingStep,
)
from model_build.storage_layout import StepWrites, step_writes


@dataclass(frozen=True)
class StepRole:
    """One job step's role: its name and what the step does with it."""

    step: str
    role_name: str
    writes: StepWrites
    reads_input: bool
    """The step reads the pipeline's input data (a parameter: the raw reviews by default)."""
    puts_features: bool
    """The step puts records into the feature group (it declares :data:`FEATURE_STORE`)."""
    logs_experiments: bool = False
    """The step logs to the execution's MLflow run (it declares :data:`EXPERIMENT_TRACKING`)."""


def step_roles(config: ProjectConfig, spec: PipelineSpec = PIPELINE) -> tuple[StepRole, ...]:
    """The role of each job step of ``spec``, in the spec's order."""
    found = []
    for writes in step_writes(config, spec):
        step = spec.step(writes.step)
        if not isinstance(step, ProcessingStep | TrainingStep):
            raise TypeError(f"{step.name!r} writes like a job step but is a {step.kind} step")
        services = step.services
        found.append(
            StepRole(
                step=step.name,
                role_name=config.step_role_name(step.name),
                writes=writes,
                reads_input=any(isinstance(source, Param) for _, source in step.data_inputs()),
                puts_features=FEATURE_STORE in services,
                logs_experiments=EXPERIMENT_TRACKING in services,
            )
        )
    return tuple(found)


def step_role_arns(config: ProjectConfig, account: str, partition: str = "aws") -> dict[str, str]:
    """Step name -> the ARN of its role in ``account``, as CDK names the roles (what the CLI derives)."""
    return {role.step: f"arn:{partition}:iam::{account}:role/{role.role_name}" for role in step_roles(config)}
