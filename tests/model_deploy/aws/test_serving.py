"""What an endpoint serves, read from SageMaker: endpoint -> endpoint config -> model -> model package."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from model_deploy.aws.serving import current_serving, same_package
from tests.model_deploy.aws.conftest import StubbedClients, package_arn, stub_serving

ENDPOINT = "review-sentiment-dev-staging"


def test_reads_the_package_and_instance_type_behind_the_variant(aws: StubbedClients) -> None:
    stub_serving(aws.stub("sagemaker"), ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge")
    serving = current_serving(aws.client("sagemaker"), ENDPOINT)
    assert serving is not None
    assert (serving.model_package_arn, serving.instance_type, serving.status) == (
        package_arn(3),
        "ml.m5.xlarge",
        "InService",
    )
    assert serving.serves(package_arn(3)) and not serving.serves(package_arn(4))
    aws.assert_no_pending_responses()


def test_a_missing_endpoint_serves_nothing(aws: StubbedClients) -> None:
    stub_serving(aws.stub("sagemaker"), ENDPOINT, None)
    assert current_serving(aws.client("sagemaker"), ENDPOINT) is None


def test_a_failed_endpoint_does_not_count_as_serving(aws: StubbedClients) -> None:
    stub_serving(aws.stub("sagemaker"), ENDPOINT, package_arn(3), status="Failed")
    serving = current_serving(aws.client("sagemaker"), ENDPOINT)
    assert serving is not None and not serving.serves(package_arn(3))


@pytest.mark.parametrize(("deleted", "because"), [("config", "endpoint config"), ("model", "model")])
def test_a_deleted_config_or_model_serves_something_unknown_not_a_traceback(
    aws: StubbedClients, deleted: str, because: str
) -> None:
    """SageMaker can roll an update back by itself, and a config or model can be deleted while in use."""
    stub_serving(
        aws.stub("sagemaker"), ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge", deleted=deleted
    )
    serving = current_serving(aws.client("sagemaker"), ENDPOINT)
    assert serving is not None and serving.model_package_arn is None and not serving.serves(package_arn(3))
    assert serving.instance_type == (None if deleted == "config" else "ml.m5.xlarge")
    assert (
        serving.unknown_because
        == f"its {because} {ENDPOINT}-1-{'abcdef01' if deleted == 'config' else '0123abcd'} was deleted"
    )
    aws.assert_no_pending_responses()


def test_other_errors_are_not_mistaken_for_a_missing_endpoint(aws: StubbedClients) -> None:
    aws.stub("sagemaker").add_client_error("describe_endpoint", service_error_code="AccessDeniedException")
    with pytest.raises(ClientError) as raised:
        current_serving(aws.client("sagemaker"), ENDPOINT)
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"


def test_package_arns_compare_as_sagemaker_names_them() -> None:
    assert same_package(package_arn(3).replace("review-sentiment", "Review-Sentiment"), package_arn(3))
    assert not same_package(package_arn(3), package_arn(30))
    assert not same_package(None, package_arn(3))
