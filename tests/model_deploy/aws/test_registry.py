"""The newest approved version: every page read, newest by CreationTime, nothing else ever chosen."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from model_deploy.aws.registry import PackageServing, newest_approved, package_serving
from tests.model_deploy.aws.conftest import (
    GROUP,
    SERVING_IMAGE,
    StubbedClients,
    package_arn,
    stub_package_image,
    summary,
)

LIST_PARAMS = {
    "ModelPackageGroupName": GROUP,
    "ModelApprovalStatus": "Approved",
    "ModelPackageType": "Versioned",
}


def test_reads_every_page_and_picks_the_newest_by_creation_time(aws: StubbedClients) -> None:
    stub = aws.stub("sagemaker")
    # The newest (version 7, created on the 20th) is on the second page, after an older version 9.
    stub.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": [summary(3), summary(9, day=10)], "NextToken": "page-2"},
        LIST_PARAMS,
    )
    stub.add_response(
        "list_model_packages",
        {"ModelPackageSummaryList": [summary(7, day=20), summary(5)]},
        {**LIST_PARAMS, "NextToken": "page-2"},
    )
    package = newest_approved(aws.client("sagemaker"), GROUP)
    assert package is not None
    assert (package.arn, package.version) == (package_arn(7), 7)
    assert "version 7" in package.describe()
    aws.assert_no_pending_responses()


def test_pending_rejected_and_failed_versions_are_never_chosen(aws: StubbedClients) -> None:
    """Even if the service's filter let them through, the newer ones here are not deployable."""
    aws.stub("sagemaker").add_response(
        "list_model_packages",
        {
            "ModelPackageSummaryList": [
                summary(4, status="PendingManualApproval"),
                summary(5, status="Rejected"),
                summary(6, ModelPackageStatus="Failed"),
                summary(2),
            ]
        },
        LIST_PARAMS,
    )
    package = newest_approved(aws.client("sagemaker"), GROUP)
    assert package is not None and package.arn == package_arn(2)


def test_none_when_nothing_is_approved(aws: StubbedClients) -> None:
    aws.stub("sagemaker").add_response("list_model_packages", {"ModelPackageSummaryList": []}, LIST_PARAMS)
    assert newest_approved(aws.client("sagemaker"), GROUP) is None


def test_the_package_serves_with_its_inference_container_on_the_instance_types_it_lists(
    aws: StubbedClients,
) -> None:
    stub_package_image(aws.stub("sagemaker"), package_arn(4), instance_types=("ml.m5.large", "ml.m5.xlarge"))
    assert package_serving(aws.client("sagemaker"), package_arn(4)) == PackageServing(
        SERVING_IMAGE, ("ml.m5.large", "ml.m5.xlarge")
    )


def test_a_package_without_an_inference_image_is_refused(aws: StubbedClients) -> None:
    aws.stub("sagemaker").add_response(
        "describe_model_package",
        {
            "ModelPackageName": GROUP,
            "ModelPackageArn": package_arn(4),
            "CreationTime": datetime(2025, 3, 1, tzinfo=UTC),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
        },
        {"ModelPackageName": package_arn(4)},
    )
    with pytest.raises(ValueError, match="has no inference container image"):
        package_serving(aws.client("sagemaker"), package_arn(4))
