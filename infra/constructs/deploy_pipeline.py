"""The model-deploy CI/CD, started by the approval rule: render, staging, smoke test, manual gate, production.

```
Source -> Render -> DeployStaging -> SmokeTestStaging -> ApproveProd -> DeployProd -> SmokeTestProd
```

Every action after Source is the project's CLI (``python -m model_deploy``) in CodeBuild, each project with
its own role:

- **Render** finds the newest approved version, notes what each stage serves, and synthesizes each stage's
  endpoint stack (``infra/stacks/endpoint_stack.py``) with that version into ``<stage>-template.json``. When
  there is nothing to deploy (nothing approved, or every stage already serves it: a duplicate event), it
  stops its own execution with the reason, so nobody finds a no-op waiting at the manual gate.
- **Deploy<Stage>** puts the template live through CloudFormation with :attr:`DeployPipeline.cloudformation_role`
  (the only role that can change endpoint stacks); a stage already serving the version is left alone. See
  ``model_deploy/aws/deploy.py`` for why this is CodeBuild rather than CodePipeline's CloudFormation action.
- **SmokeTest<Stage>** waits for ``InService`` and really invokes the endpoint (``model_deploy/smoke_test.py``);
  a failure stops the pipeline before the gate.
- **Approve<Stage>** (before every stage but the first) is a manual approval naming the version.

The pipeline runs in CodePipeline's default ``SUPERSEDED`` mode: a newer execution replaces one waiting at
the gate, so only the newest rollout is ever promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.build_pipeline import ENVIRONMENT_VARIABLE, PROJECT_NAME_VARIABLE
from infra.constructs.ci_grants import acknowledge_ci_grants
from infra.constructs.endpoint import StageEndpoints
from infra.constructs.grants import add_statements, grant_pass_role
from infra.constructs.model_registry import ModelRegistry
from infra.constructs.project_storage import ProjectStorage
from infra.constructs.source_repository import SourceRepository
from infra.nag import acknowledge, nag_spelling
from model_build.config import ProjectConfig
from model_deploy.aws.names import (
    ARTIFACT_BUCKET_VARIABLE,
    CLOUDFORMATION_ROLE_VARIABLE,
    DATA_BUCKET_VARIABLE,
    EXECUTION_ID_VARIABLE,
    HUMAN_REVIEW_WORKTEAM_VARIABLE,
    KMS_KEY_ARN_VARIABLE,
    drift_schedule_name,
    human_loop_schedule_name,
    human_loop_scheduler_role_name,
    monitor_scheduler_role_name,
)

RENDERED_ARTIFACT = "Rendered"
RENDERED_DIR = "rendered"
# CodeBuild puts a secondary input at $CODEBUILD_SRC_DIR_<artifact name>.
RENDERED_INPUT = f'"$CODEBUILD_SRC_DIR_{RENDERED_ARTIFACT}"'
RENDER_COMMAND = (
    f'python -m model_deploy render --out {RENDERED_DIR} --execution-id "${EXECUTION_ID_VARIABLE}"'
)
DEPLOY_COMMAND = f'python -m model_deploy deploy --stage "$STAGE" --release {RENDERED_INPUT}'
SMOKE_TEST_COMMAND = (
    f'python -m model_deploy smoke-test --endpoint "$ENDPOINT_NAME" --release {RENDERED_INPUT} '
    "--report smoke-test-report.json"
)
RELEASE_NAMESPACE = "Release"
EXPORTED_VARIABLES = ("MODEL_PACKAGE_ARN", "MODEL_PACKAGE_VERSION")


@dataclass(frozen=True)
class DeployStage:
    """One rollout stage: its endpoint, the stack that holds it, the role its model runs as."""

    stage: str
    endpoint_name: str
    stack_name: str
    execution_role: iam.IRole
    update_timeout: Duration
    """The stage's longest blue/green update (``maximum_execution_timeout_seconds``)."""

    @property
    def title(self) -> str:
        return self.stage.title()


@dataclass(frozen=True)
class DeployPipelineProps:
    pipeline_name: str
    project_name: str
    environment: str
    model_package_group_name: str
    registry: ModelRegistry
    """The group whose approved versions are deployed: the render reads it, CloudFormation its versions."""
    source: SourceRepository
    storage: ProjectStorage
    """Its ``cicd_bucket`` is CodePipeline's artifact store: every action's role gets it, and no role here the
    model artifacts; the render names the data bucket and the key in the endpoint stacks."""
    stages: tuple[DeployStage, ...]
    """In rollout order; a manual approval precedes every stage but the first."""
    artifacts_bucket_name: str = ""
    """Where the drift monitor's reports go: a name the render action writes into the stage template, with no
    grant on the bucket to any role here (empty: no drift monitor is rendered)."""
    human_review_workteam_arn: str = ""
    """The private workteam of human review (the setting ``humanReviewWorkteamArn``), which the render action
    writes into the stages' human-loop jobs (empty: none is rendered)."""


def _install(requirements: str, *, node: bool = False) -> dict[str, object]:
    """Python and the action's requirements; Node only where the CDK runs (jsii needs it)."""
    runtimes = {"python": "3.11", "nodejs": "20"} if node else {"python": "3.11"}
    return {"runtime-versions": runtimes, "commands": [f"pip install --no-cache-dir -r {requirements}"]}


class DeployPipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: DeployPipelineProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._props = props
        self._wildcards: list[str] = [props.registry.model_packages_arn]

        self.endpoints = StageEndpoints(self, tuple(s.endpoint_name for s in props.stages))
        self._wildcards += self.endpoints.part_arns
        pipeline_arn = stack.format_arn(service="codepipeline", resource=props.pipeline_name)
        common = {PROJECT_NAME_VARIABLE: props.project_name, ENVIRONMENT_VARIABLE: props.environment}

        self.cloudformation_role = self._cloudformation_role(props)

        self.render_project = self._project(
            "Render",
            "Finds the newest approved model version and renders each stage's endpoint template",
            {
                **common,
                DATA_BUCKET_VARIABLE: props.storage.data_bucket.bucket_name,
                KMS_KEY_ARN_VARIABLE: props.storage.key.key_arn,
                ARTIFACT_BUCKET_VARIABLE: props.artifacts_bucket_name,
                HUMAN_REVIEW_WORKTEAM_VARIABLE: props.human_review_workteam_arn,
            },
            {
                "version": "0.2",
                "env": {"exported-variables": list(EXPORTED_VARIABLES)},
                "phases": {
                    "install": _install("model_deploy/requirements-render.txt", node=True),
                    "build": {
                        "commands": [
                            RENDER_COMMAND,
                            f'export MODEL_PACKAGE_ARN="$(jq -r \'.model_package_arn // "none"\' {RENDERED_DIR}/release.json)"',
                            f'export MODEL_PACKAGE_VERSION="$(jq -r \'.model_package_version // "none"\' {RENDERED_DIR}/release.json)"',
                        ]
                    },
                },
                "artifacts": {"base-directory": RENDERED_DIR, "files": ["**/*"]},
            },
            Duration.minutes(30),
        )
        render_role = self._role(self.render_project)
        props.registry.grant_read(render_role, sid="ReadApprovedModels")
        props.registry.grant_list_versions(render_role, sid="ListModelPackages")
        self.endpoints.grant_describe(render_role)
        # AWS requires "*": ec2:DescribeInstanceTypes has no resource-level permissions; the render reads
        # whether a stage's instance type has local storage (then its endpoint config takes no KmsKeyId).
        render_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DescribeInstanceTypes", actions=["ec2:DescribeInstanceTypes"], resources=["*"]
            )
        )
        render_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="StopOwnExecution",
                actions=["codepipeline:StopPipelineExecution"],
                resources=[pipeline_arn],
            )
        )

        longest_update = max(s.update_timeout.to_seconds() for s in props.stages)
        self.deploy_project = self._project(
            "Deploy",
            "Deploys one stage's rendered endpoint template through CloudFormation",
            {**common, CLOUDFORMATION_ROLE_VARIABLE: self.cloudformation_role.role_arn},
            {
                "version": "0.2",
                "phases": {
                    "install": _install("model_deploy/requirements.txt"),
                    "build": {"commands": [DEPLOY_COMMAND]},
                },
            },
            # Up to two stack updates (an instance type change under autoscaling), each a blue/green update
            # bounded by the stage's timeout, plus creating the new fleet.
            Duration.seconds(min(8 * 3600, 2 * (longest_update + 1800))),
        )
        deploy_role = self._role(self.deploy_project)
        stacks = [
            stack.format_arn(service="cloudformation", resource="stack", resource_name=f"{s.stack_name}/*")
            for s in props.stages
        ]
        self._wildcards += stacks
        deploy_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DeployEndpointStacks",
                actions=[
                    "cloudformation:CreateChangeSet",
                    "cloudformation:DescribeChangeSet",
                    "cloudformation:ExecuteChangeSet",
                    "cloudformation:DeleteChangeSet",
                    "cloudformation:ListChangeSets",
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:GetTemplate",
                    "cloudformation:DeleteStack",
                ],
                resources=stacks,
            )
        )
        grant_pass_role(
            deploy_role,
            [self.cloudformation_role.role_arn],
            service="cloudformation.amazonaws.com",
            sid="PassCloudFormationRole",
        )
        self.endpoints.grant_describe(deploy_role)
        # The deploy sends the smoke test's requests during the bake, and smoke-tests the new version.
        self.endpoints.grant_invoke(deploy_role)

        self.smoke_test_project = self._project(
            "SmokeTest",
            "Waits for an endpoint to be InService, then invokes it with sample reviews and checks the answers",
            common,
            {
                "version": "0.2",
                "phases": {
                    "install": _install("model_deploy/requirements.txt"),
                    "build": {"commands": [SMOKE_TEST_COMMAND]},
                },
            },
            Duration.hours(2),
        )
        self.endpoints.grant_invoke(self._role(self.smoke_test_project), describe=True)

        self.pipeline = self._pipeline(props)
        acknowledge_ci_grants(
            self,
            artifact_store=props.storage.cicd_bucket,
            projects=[self.render_project, self.deploy_project, self.smoke_test_project],
        )
        acknowledge(
            self,
            "AwsSolutions-IAM5",
            "Wildcards only where names are generated: this project's model package versions, the models and "
            "endpoint configs named '<endpoint>-<version>-<digest>', the endpoint stacks' ids, scalable "
            "targets (ids are random), target-tracking alarms; '*' only for the actions AWS grants on no "
            "narrower resource (sagemaker:ListModelPackages, Application Auto Scaling's Describe calls).",
            [
                f"Resource::{nag_spelling(self, resource)}"
                for resource in dict.fromkeys([*self._wildcards, "*"])
            ],
        )

    def _project(
        self,
        construct_id: str,
        description: str,
        variables: dict[str, str],
        build_spec: dict[str, object],
        timeout: Duration,
    ) -> codebuild.PipelineProject:
        return codebuild.PipelineProject(
            self,
            construct_id,
            description=description,
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
            ),
            environment_variables={
                name: codebuild.BuildEnvironmentVariable(value=value) for name, value in variables.items()
            },
            build_spec=codebuild.BuildSpec.from_object(build_spec),
            encryption_key=self._props.storage.key,
            timeout=timeout,
        )

    @staticmethod
    def _role(project: codebuild.PipelineProject) -> iam.IRole:
        if project.role is None:
            raise RuntimeError("a PipelineProject always has a role")
        return project.role

    def _cloudformation_role(self, props: DeployPipelineProps) -> iam.Role:
        """The role CloudFormation deploys endpoint stacks with: their resources, and nothing that grants more."""
        role = iam.Role(
            self,
            "EndpointStackRole",
            assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
            description="CloudFormation deploys this project's endpoint stacks with this role",
        )
        self.endpoints.grant_deploy(role)
        # CreateModel from a model package reads the package.
        props.registry.grant_read_versions(role, sid="ReadModelPackages")
        grant_pass_role(
            role,
            [s.execution_role.role_arn for s in props.stages],
            service="sagemaker.amazonaws.com",
            sid="PassModelRoles",
        )
        guardrails = self.endpoints.grant_deploy_alarms_and_scaling(role)
        self._wildcards += [r for st in guardrails for r in st.resources if "*" in r and r != "*"]
        # The endpoint config encrypts the ML storage volume and captures with the project key: SageMaker
        # creates a grant on it for the endpoint, with the caller's permission.
        props.storage.grant_key_describe(role)
        props.storage.grant_key_to_aws_resources(role)
        self._grant_drift_monitor_schedules(role, props)
        return role

    def _grant_drift_monitor_schedules(self, role: iam.IRole, props: DeployPipelineProps) -> None:
        """The endpoint stacks' schedules (drift monitor, human loops) and their scheduler roles."""
        stack = Stack.of(self)
        config = ProjectConfig(project_name=props.project_name, environment=props.environment)
        schedules = [
            stack.format_arn(
                service="scheduler",
                resource="schedule",
                resource_name=f"default/{drift_schedule_name(s.endpoint_name)}",
            )
            for s in props.stages
        ]
        scheduler_roles = [
            stack.format_arn(service="iam", region="", resource="role", resource_name=name)
            for name in (monitor_scheduler_role_name(config), human_loop_scheduler_role_name(config))
        ]
        # The human-loop schedules (infra/constructs/human_loop_schedule.py) sit beside the drift monitor's.
        schedules += [
            stack.format_arn(
                service="scheduler",
                resource="schedule",
                resource_name=f"default/{human_loop_schedule_name(s.endpoint_name)}",
            )
            for s in props.stages
        ]
        add_statements(
            role,
            iam.PolicyStatement(
                sid="DriftMonitorSchedules",
                actions=[
                    "scheduler:CreateSchedule",
                    "scheduler:UpdateSchedule",
                    "scheduler:DeleteSchedule",
                    "scheduler:GetSchedule",
                ],
                resources=schedules,
            ),
        )
        grant_pass_role(role, scheduler_roles, service="scheduler.amazonaws.com", sid="PassSchedulerRoles")

    def _pipeline(self, props: DeployPipelineProps) -> codepipeline.Pipeline:
        source_output = codepipeline.Artifact("Source")
        self.rendered = codepipeline.Artifact(RENDERED_ARTIFACT)
        self.render_action = actions.CodeBuildAction(
            action_name="RenderRelease",
            project=self.render_project,
            input=source_output,
            outputs=[self.rendered],
            variables_namespace=RELEASE_NAMESPACE,
            environment_variables={
                EXECUTION_ID_VARIABLE: codebuild.BuildEnvironmentVariable(
                    value="#{codepipeline.PipelineExecutionId}"
                )
            },
        )
        stages = [
            # Pushes do not start a deploy; only a model approval or rejection does (see ModelApprovedRule).
            codepipeline.StageProps(
                stage_name="Source",
                actions=[
                    props.source.source_action(
                        self, source_output, props.storage.cicd_bucket, start_on_push=False
                    )
                ],
            ),
            codepipeline.StageProps(stage_name="Render", actions=[self.render_action]),
        ]
        package = self.render_action.variable("MODEL_PACKAGE_ARN")
        previous: DeployStage | None = None
        for stage in props.stages:
            if previous is not None:
                stages.append(
                    codepipeline.StageProps(
                        stage_name=f"Approve{stage.title}",
                        actions=[
                            actions.ManualApprovalAction(
                                action_name=f"Promote{stage.title}",
                                additional_information=(
                                    f"Promote {package} to {stage.endpoint_name}: it serves "
                                    f"{previous.endpoint_name} and passed its smoke test."
                                ),
                            )
                        ],
                    )
                )
            stages.append(
                codepipeline.StageProps(
                    stage_name=f"Deploy{stage.title}",
                    actions=[
                        actions.CodeBuildAction(
                            action_name=f"Deploy{stage.title}",
                            project=self.deploy_project,
                            input=source_output,
                            extra_inputs=[self.rendered],
                            environment_variables={
                                "STAGE": codebuild.BuildEnvironmentVariable(value=stage.stage)
                            },
                        )
                    ],
                )
            )
            stages.append(
                codepipeline.StageProps(
                    stage_name=f"SmokeTest{stage.title}",
                    actions=[
                        actions.CodeBuildAction(
                            action_name=f"SmokeTest{stage.title}",
                            project=self.smoke_test_project,
                            input=source_output,
                            extra_inputs=[self.rendered],
                            environment_variables={
                                "ENDPOINT_NAME": codebuild.BuildEnvironmentVariable(value=stage.endpoint_name)
                            },
                        )
                    ],
                )
            )
            previous = stage
        return codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=props.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            execution_mode=codepipeline.ExecutionMode.SUPERSEDED,
            artifact_bucket=props.storage.cicd_bucket,
            restart_execution_on_update=False,
            stages=stages,
        )
