"""The cdk-nag acknowledgment that CodePipeline and CodeBuild grants need, written once for both pipelines."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aws
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import GRANT_WILDCARD_ACTIONS, acknowledge, nag_spelling


def acknowledge_ci_grants(
    scope: Construct,
    *,
    artifact_store: s3.IBucket,
    projects: Iterable[codebuild.IProject],
    extra_resources: Iterable[str] = (),
) -> None:
    """Acknowledge the wildcards of CDK's pipeline/project grants under ``scope``, naming each resource."""
    resources = [artifact_store.arn_for_objects("*"), *extra_resources]
    for project in projects:
        # CodeBuild writes to a log group and report groups named after the project.
        resources.append(
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/codebuild/{project.project_name}:*"
        )
        resources.append(
            f"arn:{Aws.PARTITION}:codebuild:{Aws.REGION}:{Aws.ACCOUNT_ID}:report-group/{project.project_name}-*"
        )
    acknowledge(
        scope,
        "AwsSolutions-IAM5",
        "CDK's CodePipeline/CodeBuild grants: S3 and KMS actions spelled with suffix wildcards on this "
        "project's CodePipeline artifact store and key, the objects in that bucket (pipeline artifacts have "
        "generated keys; the build project's step code lies under the pipeline's own prefix of the artifacts "
        "bucket), and the log group and report groups CodeBuild names after each project.",
        [
            *(f"Action::{action}" for action in GRANT_WILDCARD_ACTIONS),
            *(f"Resource::{nag_spelling(scope, resource)}" for resource in resources),
        ],
    )
