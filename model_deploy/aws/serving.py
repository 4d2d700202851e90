"""What an endpoint serves now: the model package behind its production variant, and the instance type.

SageMaker records the package on the model: ``DescribeEndpoint`` -> the endpoint config -> the variant's model
-> ``PrimaryContainer.ModelPackageName``. That is the ground truth for idempotence (a tag could say one thing
while an update that rolled back left another serving).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_deploy.aws.names import VARIANT_NAME

# An endpoint in these states serves nothing a new deploy should leave alone.
NOT_SERVING = ("Failed", "Deleting", "OutOfService")


@dataclass(frozen=True)
class Serving:
    endpoint_name: str
    status: str
    model_package_arn: str | None
    instance_type: str | None
    unknown_because: str | None = None
    """Why the package and instance type are unknown (the endpoint config or model was deleted)."""

    def describe(self) -> str:
        """What it serves, in words: the package ARN, or why that is unknown."""
        if self.model_package_arn:
            return self.model_package_arn
        return f"an unknown version ({self.unknown_because})" if self.unknown_because else "no model package"

    def serves(self, package_arn: str) -> bool:
        return self.status not in NOT_SERVING and same_package(self.model_package_arn, package_arn)


def same_package(served: str | None, package_arn: str) -> bool:
    """ARNs compared case-insensitively after ``model-package/``: SageMaker lowercases resource names."""
    if not served:
        return False
    return served.lower().split("model-package/")[-1] == package_arn.lower().split("model-package/")[-1]


def _not_found(error: Exception) -> bool:
    response = getattr(error, "response", {})
    return response.get("Error", {}).get("Code") == "ValidationException" and "Could not find" in str(error)


def current_serving(sagemaker: Any, endpoint_name: str) -> Serving | None:
    """None when the endpoint does not exist."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except Exception as error:
        if _not_found(error):
            return None
        raise
    status = endpoint["EndpointStatus"]
    config_name = endpoint.get("EndpointConfigName")
    if not config_name:
        return Serving(endpoint_name, status, None, None)
    # SageMaker may roll an update back by itself, and anyone may delete a config or model an endpoint still
    # uses: the endpoint keeps serving, but what it serves can no longer be read.
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except Exception as error:
        if _not_found(error):
            return Serving(
                endpoint_name, status, None, None, f"its endpoint config {config_name} was deleted"
            )
        raise
    variants = config["ProductionVariants"]
    variant = next((v for v in variants if v["VariantName"] == VARIANT_NAME), variants[0])
    instance_type = variant.get("InstanceType")
    try:
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
    except Exception as error:
        if _not_found(error):
            return Serving(
                endpoint_name, status, None, instance_type, f"its model {variant['ModelName']} was deleted"
            )
        raise
    containers = [model["PrimaryContainer"]] if "PrimaryContainer" in model else model.get("Containers", [])
    package = next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)
    return Serving(endpoint_name, status, package, instance_type)
