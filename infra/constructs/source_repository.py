"""Where the pipelines get the project's code: GitHub through CodeConnections, or a CodeCommit repository."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Arn, ArnFormat, RemovalPolicy
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.settings import SourceType


@dataclass(frozen=True)
class SourceRepositoryProps:
    source_type: SourceType
    repository_name: str
    branch: str
    repository_owner: str | None = None
    """The GitHub user or organization; needed for ``github``."""
    code_connection_arn: str | None = None
    """An AVAILABLE CodeConnections connection to GitHub; needed for ``github``."""
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    """For a CodeCommit repository, which holds the code itself."""


class SourceRepository(Construct):
    """Makes the Source action of a pipeline, creating the CodeCommit repository when that is the source.

    CodeCommit is closed to new AWS customers, so GitHub (through a connection) is the source to use in a new
    account; CodeCommit stays an option for accounts that have it, and is the default only because it needs
    no connection, which lets ``cdk synth`` run without any context.
    """

    def __init__(self, scope: Construct, construct_id: str, props: SourceRepositoryProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.repository: codecommit.Repository | None = None
        if props.source_type == "codecommit":
            self.repository = codecommit.Repository(
                self,
                "Repository",
                repository_name=props.repository_name,
                description="The MLOps template: model build, model deploy and infrastructure code",
            )
            self.repository.apply_removal_policy(props.removal_policy)
        elif not (props.code_connection_arn and props.repository_owner):
            raise ValueError("a github source needs code_connection_arn and repository_owner")

    def source_action(
        self,
        scope: Construct,
        output: codepipeline.Artifact,
        artifact_bucket: s3.IBucket,
        *,
        start_on_push: bool,
    ) -> codepipeline.IAction:
        """The Source action of a pipeline under ``scope`` whose artifact store is ``artifact_bucket``;
        ``start_on_push`` starts the pipeline on every push to the branch."""
        if self.repository is not None:
            return actions.CodeCommitSourceAction(
                action_name="Source",
                repository=self.repository,
                branch=self.props.branch,
                output=output,
                trigger=actions.CodeCommitTrigger.EVENTS if start_on_push else actions.CodeCommitTrigger.NONE,
            )
        return actions.CodeStarConnectionsSourceAction(
            action_name="Source",
            role=self._connection_role(scope, artifact_bucket),
            connection_arn=self.props.code_connection_arn,  # checked above
            owner=self.props.repository_owner,
            repo=self.props.repository_name,
            branch=self.props.branch,
            output=output,
            trigger_on_push=start_on_push,
        )

    def _connection_role(self, scope: Construct, artifact_bucket: s3.IBucket) -> iam.IRole:
        """The GitHub Source action's role, granted ``UseConnection`` with the connection ARN's own prefix.

        Connections made since July 2024 have ``arn:aws:codeconnections:`` ARNs, older ones
        ``arn:aws:codestar-connections:``, and "when specifying a resource in the IAM policy, the service prefix
        must match the resource's" (https://docs.aws.amazon.com/dtconsole/latest/userguide/rename.html).
        CDK's action grants ``codestar-connections:UseConnection`` whatever the ARN, so the action gets this
        role without policy updates, and the role gets what the action's own grants would give: the connection,
        and reading and writing the artifact store.
        """
        connection_arn = self.props.code_connection_arn or ""
        service = Arn.split(connection_arn, ArnFormat.SLASH_RESOURCE_NAME).service
        role = iam.Role(
            scope,
            "SourceConnectionRole",
            assumed_by=iam.AccountRootPrincipal(),
            description="CodePipeline's GitHub Source action: reads the repository through the connection",
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=[f"{service}:UseConnection"], resources=[connection_arn])
        )
        artifact_bucket.grant_read_write(role)
        artifact_bucket.grant_put_acl(role)
        return role.without_policy_updates()
