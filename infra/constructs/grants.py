"""What every grant method of this project's constructs shares: add statements to a grantee, acknowledge them.

The constructs own their grants, as the CDK's own resources do (``bucket.grant_read(role)``): the storage
(``project_storage.py``), the registry (``model_registry.py``), the feature group (``feature_group.py``) and the
framework images (``framework_images.py``) each say what a role may do with them, and a role's construct only
calls them. Unlike ``iam.Grant``, whose statements carry no ``Sid``, these grants keep a statement id per
permission, so a policy reads as the list of what its role may do, and return the statements they added, so the
caller can acknowledge their wildcards (cdk-nag IAM5) resource by resource.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_iam as iam

from infra.nag import acknowledge, nag_spelling

LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")


def add_statements(grantee: iam.IGrantable, *statements: iam.PolicyStatement) -> list[iam.PolicyStatement]:
    """Add ``statements`` to the grantee's identity policy and return them."""
    for statement in statements:
        grantee.grant_principal.add_to_principal_policy(statement)
    return list(statements)


def grant_write_logs(grantee: iam.IGrantable, sid: str, log_groups: list[str]) -> list[iam.PolicyStatement]:
    """What a SageMaker job or endpoint needs to write its CloudWatch logs into ``log_groups``."""
    return add_statements(
        grantee, iam.PolicyStatement(sid=sid, actions=list(LOG_ACTIONS), resources=log_groups)
    )


def acknowledge_wildcards(role: iam.IRole, statements: Iterable[iam.PolicyStatement], reason: str) -> None:
    """Acknowledge IAM5 for exactly the wildcard resources of ``statements``, each spelled as cdk-nag does."""
    wildcards = dict.fromkeys(
        nag_spelling(role, resource)
        for statement in statements
        for resource in statement.resources
        if "*" in resource
    )
    acknowledge(role, "AwsSolutions-IAM5", reason, [f"Resource::{resource}" for resource in wildcards])


def grant_pass_role(
    grantee: iam.IGrantable, role_arns: list[str], *, service: str, sid: str
) -> list[iam.PolicyStatement]:
    """Let the grantee pass the roles ``role_arns`` to ``service`` only (``iam:PassedToService``): what a caller
    needs to have a service (SageMaker, CloudFormation, EventBridge Scheduler) act as one of them."""
    return add_statements(
        grantee,
        iam.PolicyStatement(
            sid=sid,
            actions=["iam:PassRole"],
            resources=role_arns,
            conditions={"StringEquals": {"iam:PassedToService": service}},
        ),
    )
