"""The SageMaker model package group that the build pipeline registers models into, and its grants."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.constructs.grants import add_statements


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

    def grant_register(self, grantee: iam.IGrantable) -> list[iam.PolicyStatement]:
        """Register versions into the group and tag them (the pipeline's RegisterModel step)."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="RegisterModels",
                actions=[
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:AddTags",
                ],
                resources=[self.arn, self.model_packages_arn],
            ),
        )

    def grant_read(
        self, grantee: iam.IGrantable, *, sid: str = "ReadApprovedModels"
    ) -> list[iam.PolicyStatement]:
        """Read the group and its versions (which are approved, what each holds); no change."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid=sid,
                actions=["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage"],
                resources=[self.arn, self.model_packages_arn],
            ),
        )

    def grant_list_versions(self, grantee: iam.IGrantable, *, sid: str) -> list[iam.PolicyStatement]:
        """List versions (``ListModelPackages``), in this stack's region only.

        The Service Authorization Reference for SageMaker ("Actions, resources, and condition keys for Amazon
        SageMaker") gives ListModelPackages no condition keys and one optional resource type, model-package,
        without saying which ARN a listing is checked against: a narrower resource cannot be relied on. The
        global aws:RequestedRegion key keeps it to this region; the listing returns names and statuses, and
        reading a package (:meth:`grant_read`, :meth:`grant_read_versions`) is limited to this group.
        """
        return add_statements(
            grantee,
            # AWS requires "*": sagemaker:ListModelPackages has no resource-level permission to rely on (above).
            iam.PolicyStatement(
                sid=sid,
                actions=["sagemaker:ListModelPackages"],
                resources=["*"],
                conditions={"StringEquals": {"aws:RequestedRegion": Stack.of(self).region}},
            ),
        )

    def grant_read_versions(
        self, grantee: iam.IGrantable, *, sid: str = "ReadModelPackages"
    ) -> list[iam.PolicyStatement]:
        """Read the group's versions only: what ``CreateModel`` from a model package needs."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid=sid, actions=["sagemaker:DescribeModelPackage"], resources=[self.model_packages_arn]
            ),
        )
