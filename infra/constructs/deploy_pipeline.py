"""The model-deploy CI/CD: started by the approval rule, it resolves the approved model version.

Deploying that version to the staging and production endpoints is added by the deploy work; until then the
pipeline stops after writing ``approved-model.json`` (the version's summary) as its output artifact.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.build_pipeline import ENVIRONMENT_VARIABLE, PROJECT_NAME_VARIABLE
from infra.constructs.ci_grants import acknowledge_ci_grants
from infra.constructs.source_repository import SourceRepository
from infra.nag import acknowledge

# Writes the newest approved version's summary, or stops with a message when the group has none yet (the
# first run, which CodePipeline starts when it creates the pipeline).
RESOLVE_APPROVED_MODEL = [
    'aws sagemaker list-model-packages --model-package-group-name "$MODEL_PACKAGE_GROUP_NAME" '
    "--model-approval-status Approved --sort-by CreationTime --sort-order Descending --max-items 1 "
    "--query 'ModelPackageSummaryList[0]' --output json > approved-model.json",
    "cat approved-model.json",
    'if [ "$(cat approved-model.json)" = "null" ]; then '
    'echo "No approved model version in $MODEL_PACKAGE_GROUP_NAME: nothing to deploy."; fi',
]


@dataclass(frozen=True)
class DeployPipelineProps:
    pipeline_name: str
    project_name: str
    environment: str
    model_package_group_name: str
    model_package_group_arn: str
    model_packages_arn: str
    source: SourceRepository
    artifacts_bucket: s3.IBucket
    encryption_key: kms.IKey


class DeployPipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: DeployPipelineProps) -> None:
        super().__init__(scope, construct_id)
        self.project = codebuild.PipelineProject(
            self,
            "ResolveApprovedModel",
            description="Finds the newest approved model version of the project's model package group",
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
            ),
            environment_variables={
                name: codebuild.BuildEnvironmentVariable(value=value)
                for name, value in {
                    PROJECT_NAME_VARIABLE: props.project_name,
                    ENVIRONMENT_VARIABLE: props.environment,
                    "MODEL_PACKAGE_GROUP_NAME": props.model_package_group_name,
                }.items()
            },
            build_spec=codebuild.BuildSpec.from_object(
                {
                    "version": "0.2",
                    "phases": {"build": {"commands": RESOLVE_APPROVED_MODEL}},
                    "artifacts": {"files": ["approved-model.json"]},
                }
            ),
            encryption_key=props.encryption_key,
            timeout=Duration.minutes(15),
        )
        role = self.project.role
        if role is None:
            raise RuntimeError("a PipelineProject always has a role")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadApprovedModels",
                actions=["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage"],
                resources=[props.model_package_group_arn, props.model_packages_arn],
            )
        )
        # AWS requires "*": sagemaker:ListModelPackages has no resource-level permissions.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListModelPackages", actions=["sagemaker:ListModelPackages"], resources=["*"]
            )
        )

        source_output = codepipeline.Artifact("Source")
        self.approved_model = codepipeline.Artifact("ApprovedModel")
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=props.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=props.artifacts_bucket,
            restart_execution_on_update=False,
            stages=[
                # Pushes do not start a deploy; only an approval does (see ModelApprovedRule).
                codepipeline.StageProps(
                    stage_name="Source",
                    actions=[props.source.source_action(source_output, start_on_push=False)],
                ),
                codepipeline.StageProps(
                    stage_name="ResolveModel",
                    actions=[
                        actions.CodeBuildAction(
                            action_name="ResolveApprovedModel",
                            project=self.project,
                            input=source_output,
                            outputs=[self.approved_model],
                        )
                    ],
                ),
            ],
        )
        acknowledge_ci_grants(
            self,
            artifacts_bucket=props.artifacts_bucket,
            projects=[self.project],
            extra_resources=[props.model_packages_arn],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "sagemaker:ListModelPackages supports no resource-level permissions, so AWS requires Resource '*'; "
            "it only lists, and describing is limited to this project's model package group.",
            ["Resource::*"],
        )
