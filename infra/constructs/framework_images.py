"""The Deep Learning Containers' image repositories that the pipeline's jobs, the endpoints and the drift
monitor pull from, and the grant to pull them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from aws_cdk import Aws, CfnMapping, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.grants import add_statements
from model_build.images import FRAMEWORK

DEEP_LEARNING_CONTAINERS_MAPPING = "DeepLearningContainersAccounts"


def deep_learning_containers_accounts(torch_version: str = FRAMEWORK.torch) -> dict[str, str]:
    """The account that publishes the PyTorch Deep Learning Containers in each region, from the SageMaker SDK's
    own image configuration (what ``image_uris.retrieve`` reads; opt-in regions use accounts of their own).

    The JSON is read where the SDK installs it, without importing the SDK: the CDK app does not need it.
    """
    spec = importlib.util.find_spec("sagemaker.core")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the SageMaker SDK (sagemaker-core) is not installed: pip install -r requirements.txt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "image_uri_config" / "pytorch.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    accounts: dict[str, str] = {}
    for scope in ("training", "inference"):
        versions = config[scope]["versions"]
        aliases = config[scope].get("version_aliases", {})
        version = (
            versions.get(torch_version)
            or versions[aliases.get(torch_version, torch_version.rsplit(".", 1)[0])]
        )
        for region, account in version["registries"].items():
            if accounts.setdefault(region, account) != account:
                raise RuntimeError(
                    f"the SDK names two DLC accounts for {region}: {accounts[region]}, {account}"
                )
    return accounts


def framework_images(scope: Construct) -> str:
    """The Deep Learning Containers' repositories in the stack's region: the account comes from a mapping of
    :func:`deep_learning_containers_accounts`, added to the stack once."""
    stack = Stack.of(scope)
    mapping = stack.node.try_find_child(DEEP_LEARNING_CONTAINERS_MAPPING)
    if not isinstance(mapping, CfnMapping):
        mapping = CfnMapping(
            stack,
            DEEP_LEARNING_CONTAINERS_MAPPING,
            mapping={
                region: {"account": account}
                for region, account in deep_learning_containers_accounts().items()
            },
        )
    account = mapping.find_in_map(Aws.REGION, "account")
    return stack.format_arn(service="ecr", account=account, resource="repository", resource_name="*")


def grant_pull_framework_images(grantee: iam.IGrantable, scope: Construct) -> list[iam.PolicyStatement]:
    """What a job or an endpoint needs to pull the Deep Learning Containers' images in ``scope``'s region."""
    return add_statements(
        grantee,
        iam.PolicyStatement(
            sid="PullFrameworkImages",
            actions=["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            resources=[framework_images(scope)],
        ),
        # AWS requires "*": ecr:GetAuthorizationToken has no resource-level permissions.
        iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
    )
