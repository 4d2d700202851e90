"""What rendering a stage's endpoint stack needs from the deploy pipeline and from the model package.

The rendering itself (``infra.endpoint_template``) synthesizes the CDK stack; these inputs need boto3 alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RenderInputs:
    """What the deploy-pipeline stack gives the render action (CodeBuild environment variables)."""

    data_bucket_name: str
    encryption_key_arn: str
    artifacts_bucket_name: str | None = None
    """Where the drift monitor writes its reports; without it, no monitor is rendered."""
    human_review_workteam_arn: str | None = None
    """The private workteam of human review; without it, no human-loop job is rendered."""


@dataclass(frozen=True)
class MonitorInputs:
    """What the drift monitor of a version needs from its model package (``model_deploy.aws.monitoring``)."""

    baseline_uri: str
    image_uri: str


def has_local_storage(ec2: Any, instance_type: str) -> bool:
    """Whether the ML instance type has local instance storage, by EC2's own description of the instance
    type behind it (``ml.g5.xlarge`` is ``g5.xlarge``): SageMaker refuses a KmsKeyId on an endpoint config
    for those ("If you specify a value for KmsKeyId when using any nitro-based instances with local storage,
    the call to CreateEndpointConfig fails", the API reference's CreateEndpointConfig)."""
    ec2_type = instance_type.removeprefix("ml.")
    try:
        (described,) = ec2.describe_instance_types(InstanceTypes=[ec2_type])["InstanceTypes"]
    except Exception as error:
        raise ValueError(
            f"cannot tell whether {instance_type} has local storage: EC2 does not describe {ec2_type} ({error}); "
            "check endpoint.instance_type in the stage file"
        ) from None
    return bool(described.get("InstanceStorageSupported"))
