"""The README's checks on every CodeCommit pull request: a CodeBuild project that runs them on its source commit.

GitHub repositories get the same checks from ``.github/workflows/ci.yml``; CodeCommit has no workflow runner,
so an EventBridge rule on the repository's pull-request events starts this project with the pull request's
source commit. The result is the build's status in the CodeBuild console (linked from the build id the rule's
event carries); CodeCommit has no commit statuses, and commenting on the pull request would need a function
with write access to the repository, which this template does not add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.nag import acknowledge, nag_spelling

CHECK_COMMANDS = ("make test", "make synth")
"""What ``.github/workflows/ci.yml`` runs: the README's test command and the CDK synthesis."""
PULL_REQUEST_EVENTS = ("pullRequestCreated", "pullRequestSourceBranchUpdated")
PULL_REQUEST_ID_VARIABLE = "PULL_REQUEST_ID"


@dataclass(frozen=True)
class PullRequestChecksProps:
    repository: codecommit.IRepository
    encryption_key: kms.IKey
    commands: Sequence[str] = CHECK_COMMANDS
    timeout_minutes: int = 90
    """The CI budget of ``.ci/run``."""


class PullRequestChecks(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: PullRequestChecksProps) -> None:
        super().__init__(scope, construct_id)
        self.project = codebuild.Project(
            self,
            "Project",
            description=f"Runs {' and '.join(props.commands)} on each pull request's source commit",
            source=codebuild.Source.code_commit(repository=props.repository),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                # The tests train a tiny model and synthesize the CDK app: two cores are slow but enough.
                compute_type=codebuild.ComputeType.MEDIUM,
            ),
            environment_variables={
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": codebuild.BuildEnvironmentVariable(
                    value="20"
                )
            },
            build_spec=codebuild.BuildSpec.from_object(
                {
                    "version": "0.2",
                    "phases": {
                        "install": {"runtime-versions": {"python": "3.11", "nodejs": "20"}},
                        "build": {"commands": list(props.commands)},
                    },
                }
            ),
            encryption_key=props.encryption_key,
            timeout=Duration.minutes(props.timeout_minutes),
        )
        # The role gets only what the project itself needs (pull the repository, logs, the key): the checks
        # call no AWS service, as the tests use moto and the synthesis makes no lookups.
        self.rule = props.repository.on_pull_request_state_change(
            "OnPullRequest",
            description="Runs the checks on a pull request's source commit when it is opened or updated",
            event_pattern=events.EventPattern(detail={"event": list(PULL_REQUEST_EVENTS)}),
            target=targets.CodeBuildProject(
                self.project,
                event=events.RuleTargetInput.from_object(
                    {
                        "sourceVersion": events.EventField.from_path("$.detail.sourceCommit"),
                        "environmentVariablesOverride": [
                            {
                                "name": PULL_REQUEST_ID_VARIABLE,
                                "value": events.EventField.from_path("$.detail.pullRequestId"),
                                "type": "PLAINTEXT",
                            }
                        ],
                    }
                ),
            ),
        )
        project_name = self.project.project_name
        acknowledge(
            self,
            "AwsSolutions-IAM5",
            "CodeBuild writes to the log group and report groups it names after this project, and the KMS "
            "grant CDK spells with suffix wildcards is on this project's own key only.",
            [
                "Action::kms:GenerateDataKey*",
                "Action::kms:ReEncrypt*",
                "Resource::"
                + nag_spelling(
                    self,
                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/codebuild/{project_name}:*",
                ),
                "Resource::"
                + nag_spelling(
                    self,
                    f"arn:{Aws.PARTITION}:codebuild:{Aws.REGION}:{Aws.ACCOUNT_ID}:report-group/{project_name}-*",
                ),
            ],
        )
