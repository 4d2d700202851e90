"""The roles of the SageMaker pipeline: the execution role the pipeline runs as, and one role per job step.

The pipeline (SageMaker Pipelines itself, and its RegisterModel step) runs as the execution role: it starts the
jobs, records the experiment, registers the model and reads the property files, and it passes each job the
role of its step (``iam:PassRole`` on those roles only, to SageMaker only). Each job runs as its step's role
(:mod:`model_build.step_roles`), which may read the code, the step's inputs and the earlier steps' outputs,
write only under its own prefixes (:mod:`model_build.storage_layout`), write its logs and metrics, pull the
framework images and use the project key; only the step that declares the Feature Store (ProcessReviews) may
put records into the feature group. No job queries Athena or reads the Glue catalog, so no role may.

The storage, the registry, the feature group and the framework images grant what a role may do with them
(their ``grant_*`` methods); written here is only what belongs to the pipeline itself: its jobs, its
experiment, its metrics and the roles it passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.experiment_tracking import ExperimentTracking
from infra.constructs.feature_group import ReviewFeatureGroup
from infra.constructs.framework_images import grant_pull_framework_images
from infra.constructs.grants import acknowledge_wildcards, add_statements, grant_pass_role, grant_write_logs
from infra.constructs.model_registry import ModelRegistry
from infra.constructs.project_storage import ProjectStorage
from model_build.step_roles import StepRole
from model_build.storage_layout import PipelineStorage


@dataclass(frozen=True)
class StepRoleProps:
    step: StepRole
    storage: ProjectStorage
    feature_group: ReviewFeatureGroup
    layout: PipelineStorage
    """Where in the two buckets the jobs read (``model_build.storage_layout``); the step's writes are its own."""
    experiment_tracking: ExperimentTracking | None = None
    """The project's MLflow tracking server: it grants logging runs to the role of a step that declares
    experiment tracking (None: the project has no server)."""


class SageMakerStepRole(Construct):
    """The role the jobs of one step run as: assumed by SageMaker, passed on by the execution role only."""

    def __init__(self, scope: Construct, construct_id: str, props: StepRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        step = props.step
        self.role = iam.Role(
            self,
            "Role",
            role_name=step.role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"The {step.step} jobs of this project's SageMaker pipeline",
        )
        sagemaker_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        storage = props.storage
        statements = [
            *storage.grant_pipeline_read(self.role, props.layout, reads_input=step.reads_input),
            *storage.grant_step_prefix_write(self.role, step.writes),
            *grant_write_logs(self.role, "JobLogs", [sagemaker_logs]),
            *grant_pull_framework_images(self.role, stack),
            # AWS requires "*": cloudwatch:PutMetricData has no resource-level permissions; the namespace
            # condition keeps it to SageMaker's own metrics.
            *add_statements(
                self.role,
                iam.PolicyStatement(
                    sid="JobMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                ),
            ),
            *storage.grant_key_use(self.role),
        ]
        if step.puts_features:
            # preprocess.py's FeatureStoreIngestor (kms:Decrypt on the online store's key is UseProjectKey).
            statements += props.feature_group.grant_put_record(self.role)
        if step.logs_experiments and props.experiment_tracking is not None:
            statements += props.experiment_tracking.grant_log_runs(self.role)
        acknowledge_wildcards(
            self.role,
            statements,
            f"Every wildcard is scoped to this project: objects under the prefixes the {step.step} jobs read "
            "and under the step's own output prefixes and the MLflow artifact store's (execution ids, job names, "
            "experiment and run ids are known only at run time), SageMaker's log groups, the framework image repositories; '*' only for the two actions "
            "AWS grants on no narrower resource (ecr:GetAuthorizationToken; cloudwatch:PutMetricData, with a "
            "namespace condition).",
        )


@dataclass(frozen=True)
class ExecutionRoleProps:
    role_name: str
    pipeline_name: str
    storage: ProjectStorage
    registry: ModelRegistry
    step_roles: tuple[iam.IRole, ...]
    """The roles the pipeline's jobs run as: the only roles it may pass."""
    layout: PipelineStorage
    """Where in the artifacts bucket the pipeline reads its property files and reports."""


class SageMakerExecutionRole(Construct):
    """Assumed by SageMaker Pipelines for the pipeline and its RegisterModel step; it passes each job its
    step's role, and writes nothing in S3 itself."""

    def __init__(self, scope: Construct, construct_id: str, props: ExecutionRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        self.role = iam.Role(
            self,
            "Role",
            role_name=props.role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker pipeline role of this project only; its jobs run as their steps' roles",
        )
        statements = props.registry.grant_register(self.role)
        statements += add_statements(
            self.role,
            # SageMaker Pipelines names the jobs of its steps "pipelines-<execution id>-<step>-<suffix>".
            iam.PolicyStatement(
                sid="PipelineStepJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[
                    sagemaker_arn("processing-job", "pipelines-*"),
                    sagemaker_arn("training-job", "pipelines-*"),
                ],
            ),
            # Pipelines records each execution as a trial of an experiment named after the pipeline.
            iam.PolicyStatement(
                sid="PipelineExperiments",
                actions=[
                    "sagemaker:CreateExperiment",
                    "sagemaker:DescribeExperiment",
                    "sagemaker:CreateTrial",
                    "sagemaker:DescribeTrial",
                    "sagemaker:CreateTrialComponent",
                    "sagemaker:DescribeTrialComponent",
                    "sagemaker:AssociateTrialComponent",
                    "sagemaker:AddTags",
                ],
                resources=[
                    sagemaker_arn("experiment", props.pipeline_name),
                    sagemaker_arn("experiment-trial", "*"),
                    sagemaker_arn("experiment-trial-component", "*"),
                ],
            ),
        )
        statements += grant_pass_role(
            self.role,
            [role.role_arn for role in props.step_roles],
            service="sagemaker.amazonaws.com",
            sid="PassStepRolesToSageMaker",
        )
        # The property files (data check, evaluation) that conditions and registration read.
        statements += props.storage.grant_pipeline_read(self.role, props.layout, reads_input=False)
        # The registered model names its inference image.
        statements += grant_pull_framework_images(self.role, stack)
        statements += props.storage.grant_key_use(self.role)
        acknowledge_wildcards(
            self.role,
            statements,
            "Every wildcard is scoped to this project: objects under the pipeline's artifact prefix (execution "
            "ids and job names are known only at run time), its model package versions, the jobs SageMaker "
            "Pipelines names 'pipelines-*', the trials of its pipeline's experiment, the framework image "
            "repositories; '*' only for ecr:GetAuthorizationToken, which AWS grants on no narrower resource.",
        )
