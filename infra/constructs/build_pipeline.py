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
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.ci_grants import acknowledge_ci_grants
from infra.constructs.source_repository import SourceRepository
from model_build.sagemaker_pipeline import ARTIFACT_BUCKET_VARIABLE, DATA_BUCKET_VARIABLE, ROLE_ARN_VARIABLE
from model_build.storage_layout import listing

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
    data_bucket: s3.IBucket
    input_prefixes: tuple[str, ...]
    """The data bucket's prefixes the pipeline reads (``PipelineStorage.data_prefixes``: the raw reviews), which
    the CLI lists to fingerprint ``InputDataUrl`` before it starts an execution."""
    artifacts_bucket: s3.IBucket
    code_prefix: str
    """Where in the artifacts bucket the CLI uploads the step code (the config's ``pipeline_artifacts_prefix``)."""
    cicd_bucket: s3.IBucket
    """CodePipeline's artifact store (source snapshots), apart from the model artifacts."""
    encryption_key: kms.IKey
    retrain_schedule: str | None = None
    champion_endpoint_name: str = ""
    """The prod endpoint, whose model package the CLI compares a new model with (the champion); empty: no
    grants to look for one, and a run must name it (``ChampionModelPackageArn``)."""
    model_package_group_name: str = ""
    """Where the CLI finds the newest approved version when the endpoint serves none (the champion too)."""


class BuildPipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: BuildPipelineProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The names the CLI reads (model_build.sagemaker_pipeline, model_build.config), imported, not re-spelled.
        self.environment_variables = {
            PROJECT_NAME_VARIABLE: props.project_name,
            ENVIRONMENT_VARIABLE: props.environment,
            ROLE_ARN_VARIABLE: props.execution_role.role_arn,
            ARTIFACT_BUCKET_VARIABLE: props.artifacts_bucket.bucket_name,
            DATA_BUCKET_VARIABLE: props.data_bucket.bucket_name,
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
            encryption_key=props.encryption_key,
            # --wait follows the SageMaker pipeline through training; 8 hours bounds a stuck run.
            timeout=Duration.hours(8),
        )
        role = self.project.role
        if role is None:
            raise RuntimeError("a PipelineProject always has a role")
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
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassExecutionRoleToSageMaker",
                actions=["iam:PassRole"],
                resources=[props.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # The CLI lists the input (the raw reviews by default) to fingerprint it, so that SageMaker's step cache
        # misses exactly when the data changes; without the listing every run gets a unique fingerprint and no
        # step is ever reused. Listing is all it does in the data bucket: it reads and writes no object there.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListPipelineInput",
                actions=["s3:ListBucket"],
                resources=[props.data_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": list(listing(props.input_prefixes))}},
            )
        )
        # The CLI uploads the step code under the pipeline's prefix of the artifacts bucket.
        code = f"{props.code_prefix}/*"
        props.artifacts_bucket.grant_read_write(role, code)
        champion_resources = self._find_champion(role, props) if props.champion_endpoint_name else []

        source_output = codepipeline.Artifact("Source")
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=props.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=props.cicd_bucket,
            restart_execution_on_update=False,
            stages=[
                codepipeline.StageProps(
                    stage_name="Source",
                    actions=[
                        props.source.source_action(self, source_output, props.cicd_bucket, start_on_push=True)
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
            artifact_store=props.cicd_bucket,
            projects=[self.project],
            extra_resources=[
                f"{sagemaker_pipeline}/execution/*",
                props.artifacts_bucket.arn_for_objects(code),
                *champion_resources,
            ],
        )

    @staticmethod
    def _find_champion(role: iam.IRole, props: BuildPipelineProps) -> list[str]:
        """Let the CLI read which version prod serves, else the newest approved one, and its model's URL
        (``pipelines/runners/sagemaker.py`` ``with_champion``): reads only. Returns the wildcard resources.

        Model and endpoint config names are ``<endpoint>-<version>-<digest>`` (``infra/constructs/endpoint.py``).
        ``sagemaker:ListModelPackages`` takes no narrower resource (see ``infra/constructs/deploy_pipeline.py``),
        so it is kept to the stack's region; reading a package is kept to the project's group.
        """
        stack = Stack.of(role)

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        parts = [
            sagemaker_arn(kind, f"{props.champion_endpoint_name}-*") for kind in ("model", "endpoint-config")
        ]
        packages = sagemaker_arn("model-package", f"{props.model_package_group_name}/*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FindChampion",
                actions=[
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DescribeModel",
                    "sagemaker:DescribeModelPackage",
                ],
                resources=[sagemaker_arn("endpoint", props.champion_endpoint_name), *parts, packages],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListModelVersions",
                actions=["sagemaker:ListModelPackages"],
                resources=["*"],
                conditions={"StringEquals": {"aws:RequestedRegion": stack.region}},
            )
        )
        return [*parts, packages, "*"]
