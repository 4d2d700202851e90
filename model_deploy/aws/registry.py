"""Which model version to roll out: the newest ``Approved`` version of the project's model package group.

Every page of ``ListModelPackages`` is read and the newest is chosen by ``CreationTime`` here, rather than
trusting the first item of a sorted page: the approval filter is applied on both sides, so a summary that is
``PendingManualApproval`` or ``Rejected`` can never be deployed, whatever the service returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

APPROVED = "Approved"


@dataclass(frozen=True)
class ApprovedPackage:
    arn: str
    version: int | None
    created: datetime

    def describe(self) -> str:
        version = f"version {self.version}" if self.version is not None else "a version"
        return f"{version} ({self.arn}, created {self.created.isoformat()})"


@dataclass(frozen=True)
class PackageServing:
    """What a package says it serves with: its image, and the instance types it lists for real-time inference."""

    image: str
    realtime_instance_types: tuple[str, ...]
    """``InferenceSpecification.SupportedRealtimeInferenceInstanceTypes``; empty when the package lists none
    (the list is optional for versioned packages, API_InferenceSpecification)."""


def package_serving(sagemaker: Any, package_arn: str) -> PackageServing:
    """The serving image the package was registered with (``InferenceSpecification.Containers[0].Image``) and
    the real-time instance types it lists, from one ``DescribeModelPackage``."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    specification = package.get("InferenceSpecification", {})
    containers = specification.get("Containers", [])
    if not containers or not containers[0].get("Image"):
        raise ValueError(f"{package_arn} has no inference container image: it cannot be deployed")
    return PackageServing(
        str(containers[0]["Image"]),
        tuple(specification.get("SupportedRealtimeInferenceInstanceTypes", ())),
    )


def approved_version(sagemaker: Any, group_name: str, version: int) -> ApprovedPackage | None:
    """Version ``version`` of ``group_name`` if it is approved and completed; None otherwise."""
    paginator = sagemaker.get_paginator("list_model_packages")
    pages = paginator.paginate(
        ModelPackageGroupName=group_name, ModelApprovalStatus=APPROVED, ModelPackageType="Versioned"
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            if (
                summary.get("ModelPackageVersion") == version
                and summary.get("ModelApprovalStatus") == APPROVED
                and summary.get("ModelPackageStatus", "Completed") == "Completed"
            ):
                return ApprovedPackage(summary["ModelPackageArn"], version, summary["CreationTime"])
    return None


def newest_approved(sagemaker: Any, group_name: str) -> ApprovedPackage | None:
    """The newest approved, completed version in ``group_name``; None when the group has none."""
    newest: dict[str, Any] | None = None
    paginator = sagemaker.get_paginator("list_model_packages")
    pages = paginator.paginate(
        ModelPackageGroupName=group_name, ModelApprovalStatus=APPROVED, ModelPackageType="Versioned"
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            if summary.get("ModelApprovalStatus") != APPROVED:
                continue
            # A version whose creation failed has no usable inference specification.
            if summary.get("ModelPackageStatus", "Completed") != "Completed":
                continue
            if newest is None or summary["CreationTime"] > newest["CreationTime"]:
                newest = summary
    if newest is None:
        return None
    return ApprovedPackage(
        newest["ModelPackageArn"], newest.get("ModelPackageVersion"), newest["CreationTime"]
    )
