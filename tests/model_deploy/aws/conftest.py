"""Clients for the rollout's tests: real botocore clients with fake credentials, answered by a Stubber.

A Stubber checks every call's parameters against the service model and answers in order, so a test states
exactly which AWS calls a command makes, and an unexpected call fails it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.runners import sagemaker as sagemaker_runner

REGION = "us-east-1"
ACCOUNT = "123456789012"
GROUP = "review-sentiment-dev-models"


def package_arn(version: int, group: str = GROUP) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"


def summary(version: int, status: str = "Approved", day: int | None = None, **extra: Any) -> dict[str, Any]:
    """A ``ModelPackageSummaryList`` item; created on day ``version`` of March unless ``day`` is given."""
    return {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": version,
        "ModelPackageArn": package_arn(version),
        "CreationTime": datetime(2025, 3, day or version, tzinfo=UTC),
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": status,
        **extra,
    }


class StubbedClients:
    """``clients(service)`` for the CLI: one stubbed client per service, activated for the test."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.stubbers: dict[str, Stubber] = {}

    def __call__(self, service: str) -> Any:
        return self.client(service)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            client = boto3.client(
                service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            stubber = Stubber(client)
            stubber.activate()
            self.clients[service] = client
            self.stubbers[service] = stubber
        return self.clients[service]

    def stub(self, service: str) -> Stubber:
        self.client(service)
        return self.stubbers[service]

    def assert_no_pending_responses(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedClients]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for variable in ("MLOPS_PROJECT_NAME", "MLOPS_ENVIRONMENT", "AWS_REGION"):
        monkeypatch.delenv(variable, raising=False)
    clients = StubbedClients()
    yield clients
    for stubber in clients.stubbers.values():
        stubber.deactivate()


def _not_found(stubber: Stubber, operation: str, what: str, params: dict[str, str]) -> None:
    """SageMaker's answer for a resource that does not exist (a ValidationException, "Could not find ...")."""
    (name,) = params.values()
    stubber.add_client_error(
        operation,
        service_error_code="ValidationException",
        service_message=f'Could not find {what} "{name}".',
        expected_params=params,
    )


def stub_serving(
    stubber: Stubber,
    endpoint: str,
    package: str | None,
    *,
    status: str = "InService",
    instance_type: str = "ml.m5.large",
    deleted: str | None = None,
) -> None:
    """What ``current_serving`` asks for an endpoint that serves ``package`` (None: no such endpoint);
    ``deleted`` (``"config"`` or ``"model"``) is gone while the endpoint still uses it."""
    if package is None:
        stubber.add_client_error(
            "describe_endpoint",
            service_error_code="ValidationException",
            service_message=f'Could not find endpoint "{endpoint}".',
            expected_params={"EndpointName": endpoint},
        )
        return
    now = datetime(2025, 3, 1, tzinfo=UTC)
    config_name = f"{endpoint}-1-abcdef01"
    model_name = f"{endpoint}-1-0123abcd"
    stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": endpoint,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint}",
            "EndpointConfigName": config_name,
            "EndpointStatus": status,
            "CreationTime": now,
            "LastModifiedTime": now,
        },
        {"EndpointName": endpoint},
    )
    if deleted == "config":
        _not_found(
            stubber, "describe_endpoint_config", "endpoint configuration", {"EndpointConfigName": config_name}
        )
        return
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": config_name,
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{config_name}",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": model_name, "InstanceType": instance_type}
            ],
            "CreationTime": now,
        },
        {"EndpointConfigName": config_name},
    )
    if deleted == "model":
        _not_found(stubber, "describe_model", "model", {"ModelName": model_name})
        return
    stubber.add_response(
        "describe_model",
        {
            "ModelName": model_name,
            "PrimaryContainer": {"ModelPackageName": package},
            "CreationTime": now,
            "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{model_name}",
        },
        {"ModelName": model_name},
    )


SERVING_IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
"""What the pipeline registers for the ``DeployInstanceType`` default (a CPU instance)."""
REGISTERED_INSTANCE_TYPES = tuple(dict.fromkeys(("ml.m5.large", *sagemaker_runner.stage_instance_types())))
"""What ``pipelines run --sagemaker`` registers: ``DeployInstanceType``'s default and every stage's type."""


def stub_package_image(
    stubber: Stubber,
    package: str,
    image: str = SERVING_IMAGE,
    instance_types: tuple[str, ...] = REGISTERED_INSTANCE_TYPES,
) -> None:
    """What ``package_serving`` reads of a package: its inference container and real-time instance types."""
    stubber.add_response(
        "describe_model_package",
        {
            "ModelPackageName": package.rsplit("/", 2)[-2],
            "ModelPackageArn": package,
            "CreationTime": datetime(2025, 3, 1, tzinfo=UTC),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "InferenceSpecification": {
                "Containers": [{"Image": image, "ModelDataUrl": "s3://bucket/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
                "SupportedRealtimeInferenceInstanceTypes": list(instance_types),
            },
        },
        {"ModelPackageName": package},
    )


def stub_instance_storage(stubber: Stubber, instance_type: str, *, local_storage: bool = False) -> None:
    """EC2's description of the instance type behind an ML instance type: whether it has local storage."""
    ec2_type = instance_type.removeprefix("ml.")
    stubber.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": ec2_type, "InstanceStorageSupported": local_storage}]},
        {"InstanceTypes": [ec2_type]},
    )
