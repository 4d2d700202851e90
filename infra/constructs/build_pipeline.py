"""The model-build CI/CD: a push to the branch runs the SageMaker pipeline through the project's CLI."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.ci_grants import acknowledge_ci_grants
from infra.constructs.endpoint import StageEndpoints
from infra.constructs.experiment_tracking import grant_start_runs
from infra.constructs.grants import grant_pass_role
from infra.constructs.model_registry import ModelRegistry
from infra.constructs.project_storage import ProjectStorage
from infra.constructs.source_repository import SourceRepository
from model_build.sagemaker_pipeline import (
    ARTIFACT_BUCKET_VARIABLE,
    DATA_BUCKET_VARIABLE,
    ROLE_ARN_VARIABLE,
    TRACKING_SERVER_VARIABLE,
)

BUILD_COMMAND = "python -m pipelines run --sagemaker --wait"
BUILD_REQUIREMENTS = "requirements-build.txt"
"""What the build project installs: the SageMaker SDK and boto3, enough to build and start the definition."""
# model_build.config.load_config reads these two; it spells them inline, so they are named once here.
PROJECT_NAME_VARIABLE = "MLOPS_PROJECT_NAME"
ENVIRONMENT_VARIABLE = "MLOPS_ENVIRONMENT"


@dataclass(frozen=True)
class BuildPipelineProps:
    pipeline_name: str
    """The CodePipeline's name (config ``build_pipeline_name``)."""
    sagemaker_pipeline_name: str
    """The SageMaker pipeline the CLI creates and runs (config ``pipeline_name``)."""
    project_name: str
    environment: str
    source: SourceRepository
    execution_role: iam.IRole
    storage: ProjectStorage
    """The key, the artifact store (CodePipeline's ``cicd_bucket``), and the buckets the CLI lists and writes."""
    input_prefixes: tuple[str, ...]
    """The data bucket's prefixes the pipeline reads (``PipelineStorage.data_prefixes``: the raw reviews), which
    the CLI lists to fingerprint ``InputDataUrl`` before it starts an execution."""
    code_prefix: str
    """Where in the artifacts bucket the CLI uploads the step code (the config's ``pipeline_artifacts_prefix``)."""
    retrain_schedule: str | None = None
    champion_endpoint_name: str = ""
    """The prod endpoint, whose model package the CLI compares a new model with (the champion); empty: no
    grants to look for one, and a run must name it (``ChampionModelPackageArn``)."""
    registry: ModelRegistry | None = None
    """Where the CLI finds the newest approved version when the endpoint serves none (the champion too)."""
    mlflow_tracking_server_arn: str = ""
    """The project's MLflow tracking server: the CLI creates each execution's run there (empty: none)."""


class BuildPipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: BuildPipelineProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The names the CLI reads (model_build.sagemaker_pipeline, model_build.config), imported, not re-spelled.
        self.environment_variables = {
            PROJECT_NAME_VARIABLE: props.project_name,
            ENVIRONMENT_VARIABLE: props.environment,
            ROLE_ARN_VARIABLE: props.execution_role.role_arn,
            ARTIFACT_BUCKET_VARIABLE: props.storage.artifacts_bucket.bucket_name,
            DATA_BUCKET_VARIABLE: props.storage.data_bucket.bucket_name,
            **(
                {TRACKING_SERVER_VARIABLE: props.mlflow_tracking_server_arn}
                if props.mlflow_tracking_server_arn
                else {}
            ),
        }
        self.project = codebuild.PipelineProject(
            self,
            "RunSageMakerPipeline",
            description=f"Installs the repository and runs: {BUILD_COMMAND}",
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
            ),
            environment_variables={
                name: codebuild.BuildEnvironmentVariable(value=value)
                for name, value in self.environment_variables.items()
            },
            build_spec=codebuild.BuildSpec.from_object(
                {
                    "version": "0.2",
                    "phases": {
                        "install": {
                            "runtime-versions": {"python": "3.11"},
                            "commands": [f"pip install --no-cache-dir -r {BUILD_REQUIREMENTS}"],
                        },
                        "build": {"commands": [BUILD_COMMAND]},
                    },
                }
            ),
            encryption_key=props.storage.key,
            # --wait follows the SageMaker pipeline through training; 8 hours bounds a stuck run.
            timeout=Duration.hours(8),
        )
        role = self.project.role
        if role is None:
            raise RuntimeError("a PipelineProject always has a role")
        if props.mlflow_tracking_server_arn:
            # `pipelines run --sagemaker` creates the execution's MLflow run, then tags and ends it after --wait.
            grant_start_runs(role, props.mlflow_tracking_server_arn)
        sagemaker_pipeline = stack.format_arn(
            service="sagemaker", resource="pipeline", resource_name=props.sagemaker_pipeline_name
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="RunSageMakerPipeline",
                actions=[
                    "sagemaker:CreatePipeline",
                    "sagemaker:UpdatePipeline",
                    "sagemaker:DescribePipeline",
                    "sagemaker:StartPipelineExecution",
                    "sagemaker:DescribePipelineExecution",
                    "sagemaker:ListPipelineExecutionSteps",
                    "sagemaker:StopPipelineExecution",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[sagemaker_pipeline, f"{sagemaker_pipeline}/execution/*"],
            )
        )
        grant_pass_role(
            role,
            [props.execution_role.role_arn],
            service="sagemaker.amazonaws.com",
            sid="PassExecutionRoleToSageMaker",
        )
        # The CLI lists the input (the raw reviews by default) to fingerprint it, so that SageMaker's step cache
        # misses exactly when the data changes; without the listing every run gets a unique fingerprint and no
        # step is ever reused. Listing is all it does in the data bucket: it reads and writes no object there.
        props.storage.grant_input_listing(role, props.input_prefixes)
        # The CLI uploads the step code under the pipeline's prefix of the artifacts bucket.
        code = props.storage.grant_code_upload(role, props.code_prefix)
        champion_resources = (
            self._find_champion(role, props.champion_endpoint_name, props.registry)
            if props.champion_endpoint_name and props.registry
            else []
        )

        source_output = codepipeline.Artifact("Source")
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=props.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=props.storage.cicd_bucket,
            restart_execution_on_update=False,
            stages=[
                codepipeline.StageProps(
                    stage_name="Source",
                    actions=[
                        props.source.source_action(
                            self, source_output, props.storage.cicd_bucket, start_on_push=True
                        )
                    ],
                ),
                codepipeline.StageProps(
                    stage_name="Build",
                    actions=[
                        actions.CodeBuildAction(
                            action_name="RunSageMakerPipeline", project=self.project, input=source_output
                        )
                    ],
                ),
            ],
        )
        self.schedule: events.Rule | None = None
        if props.retrain_schedule:
            self.schedule = events.Rule(
                self,
                "RetrainSchedule",
                description="Retrains on a schedule, besides every push",
                schedule=events.Schedule.expression(props.retrain_schedule),
                targets=[targets.CodePipeline(self.pipeline)],
            )
        acknowledge_ci_grants(
            self,
            artifact_store=props.storage.cicd_bucket,
            projects=[self.project],
            extra_resources=[
                f"{sagemaker_pipeline}/execution/*",
                code,
                *champion_resources,
            ],
        )

    def _find_champion(self, role: iam.IRole, endpoint_name: str, registry: ModelRegistry) -> list[str]:
        """Let the CLI read which version prod serves, else the newest approved one, and its model's URL
        (``pipelines/runners/sagemaker.py`` ``with_champion``): reads only. Returns the wildcard resources.

        The prod endpoint grants reading what it serves, the registry reading and listing its versions (the
        listing kept to the stack's region): each action on its own resources only.
        """
        champion = StageEndpoints(self, (endpoint_name,))
        champion.grant_describe(role, sid="FindChampion")
        registry.grant_read_versions(role, sid="ReadChampionVersions")
        registry.grant_list_versions(role, sid="ListModelVersions")
        return [*champion.part_arns, registry.model_packages_arn, "*"]
