"""The SageMaker model package group that the build pipeline registers models into."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct


@dataclass(frozen=True)
class ModelRegistryProps:
    model_package_group_name: str
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    """Retained by default: the group holds every registered version and its approval history."""


class ModelRegistry(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ModelRegistryProps) -> None:
        super().__init__(scope, construct_id)
        self.model_package_group_name = props.model_package_group_name
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=props.model_package_group_name,
            model_package_group_description="Review sentiment models; approving a version starts the deploy",
        )
        self.group.apply_removal_policy(props.removal_policy)

    @property
    def arn(self) -> str:
        return self.group.attr_model_package_group_arn

    @property
    def model_packages_arn(self) -> str:
        """Every version in the group: ``model-package/<group>/<version>``."""
        return Stack.of(self).format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{self.model_package_group_name}/*"
        )
