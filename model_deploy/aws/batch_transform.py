"""A SageMaker Batch Transform of an approved model version over an S3 prefix: the requests, built offline.

The same model package the endpoints serve, with the same handler (``code/inference.py``) and content types,
so one model serves both ways. The input is JSON Lines, one review per line with its id beside it::

    {"review_id": "r-1", "features": "Lovely soft fabric and a great fit"}

- ``SplitType: Line`` and ``BatchStrategy: MultiRecord``: SageMaker packs whole lines into each request, up to
  ``MaxPayloadInMB``; the handler reads a JSON Lines body as one review per line (as the endpoint does);
- ``DataProcessing``: only ``$.features`` reaches the model; each answer is joined to its input line
  (``JoinSource: Input``) and the output keeps the id and the answer (``$['review_id','SageMakerOutput']``);
- ``AssembleWith: Line`` with ``Accept: application/jsonlines``: one output line per input line, in order,
  in ``<output prefix>/<input file name>.out``.

How the payload is sized: ``MaxPayloadInMB`` is 1 (:data:`MAX_PAYLOAD_MB`). The serving container refuses a
body over ~6 MB (TorchServe's default ``max_request_size``), and a mini-batch must also finish within the
invocation timeout on a CPU instance: a 1 MB payload is ~2,000 reviews of the course's data (~500 bytes a
line), minutes of roberta-base on ``ml.m5``, well within :data:`INVOCATION_TIMEOUT_SECONDS`. The handler's
cap on reviews per request (``MAX_REVIEWS_PER_REQUEST``, 64 for the endpoints) is raised for the transform
to what a payload can hold at the shortest possible line, so no mini-batch is refused for its count; the
server's own batching is off (one transform request at a time per instance), so the handler takes every
body's format from its Content-Type.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from model_build.config import ProjectConfig

CONTENT_TYPE = "application/jsonlines"
ACCEPT = "application/jsonlines"
TEXT_FIELD = "features"
ID_FIELD = "review_id"
MAX_PAYLOAD_MB = 1
INVOCATION_TIMEOUT_SECONDS = 3600
SHORTEST_LINE_BYTES = len('"x"\n')
"""The fewest bytes a review can take in a payload (a one-character review, after the ``$.features`` input
filter): the bound on reviews per payload."""
MAX_REVIEWS_PER_PAYLOAD = math.ceil(MAX_PAYLOAD_MB * 1024 * 1024 / SHORTEST_LINE_BYTES)
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
_NAME_LIMIT = 63


@dataclass(frozen=True)
class TransformPlan:
    """One Batch Transform: the package to run, where the reviews are and where the answers go."""

    model_package_arn: str
    input_uri: str
    output_uri: str
    role_arn: str
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    kms_key_arn: str | None = None
    id_field: str = ID_FIELD

    def check(self) -> list[str]:
        problems = []
        for name in ("input_uri", "output_uri"):
            if not getattr(self, name).startswith("s3://"):
                problems.append(f"{name} {getattr(self, name)!r} is not an s3:// URI")
        if ":model-package/" not in self.model_package_arn:
            problems.append(f"{self.model_package_arn!r} is not a model package ARN")
        if self.instance_count < 1:
            problems.append("instance_count must be at least 1")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", self.id_field):
            problems.append(f"id field {self.id_field!r}: use letters, digits, '_' and '-'")
        return problems


def job_name(config: ProjectConfig, version: int | None, now: datetime | None = None) -> str:
    """``<project>-<env>-batch-v<version>-<UTC time>``, within SageMaker's 63 characters."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    name = f"{config.prefix}-batch-v{version if version is not None else 'x'}-{stamp}"
    if len(name) > _NAME_LIMIT:
        raise ValueError(f"transform job name {name!r} is longer than {_NAME_LIMIT} characters")
    return name


def transform_environment() -> dict[str, str]:
    """The serving container's variables for a transform (see the module docstring)."""
    return {
        "MAX_REVIEWS_PER_REQUEST": str(MAX_REVIEWS_PER_PAYLOAD),
        "SAGEMAKER_TS_BATCH_SIZE": "1",
        "SAGEMAKER_TS_MAX_BATCH_DELAY": "0",
        "SAGEMAKER_TS_RESPONSE_TIMEOUT": str(INVOCATION_TIMEOUT_SECONDS),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }


def create_model_request(plan: TransformPlan, name: str, config: ProjectConfig) -> dict[str, Any]:
    """``CreateModel`` from the package: its image, artifact and handler, with the transform's settings."""
    return {
        "ModelName": name,
        "PrimaryContainer": {
            "ModelPackageName": plan.model_package_arn,
            "Environment": transform_environment(),
        },
        "ExecutionRoleArn": plan.role_arn,
        "Tags": [{"Key": key, "Value": value} for key, value in config.tags.items()],
    }


def create_transform_job_request(plan: TransformPlan, name: str, config: ProjectConfig) -> dict[str, Any]:
    """``CreateTransformJob`` over ``plan.input_uri`` with the model of :func:`create_model_request`."""
    problems = plan.check()
    if problems:
        raise ValueError("batch transform: " + "; ".join(problems))
    output: dict[str, Any] = {"S3OutputPath": plan.output_uri, "Accept": ACCEPT, "AssembleWith": "Line"}
    resources: dict[str, Any] = {"InstanceType": plan.instance_type, "InstanceCount": plan.instance_count}
    if plan.kms_key_arn:
        output["KmsKeyId"] = plan.kms_key_arn
        resources["VolumeKmsKeyId"] = plan.kms_key_arn
    return {
        "TransformJobName": name,
        "ModelName": name,
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "BatchStrategy": "MultiRecord",
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT_SECONDS,
            "InvocationsMaxRetries": 1,
        },
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": plan.input_uri}},
            "ContentType": CONTENT_TYPE,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "DataProcessing": {
            "InputFilter": f"$.{TEXT_FIELD}",
            "JoinSource": "Input",
            "OutputFilter": f"$['{plan.id_field}','SageMakerOutput']",
        },
        "Tags": [{"Key": key, "Value": value} for key, value in config.tags.items()],
    }


def start_transform(sagemaker: Any, plan: TransformPlan, name: str, config: ProjectConfig) -> str:
    """Create the model and the job; returns the job's ARN. (The model is the job's: delete both after.)"""
    job = create_transform_job_request(plan, name, config)  # checked before anything is created
    sagemaker.create_model(**create_model_request(plan, name, config))
    return str(sagemaker.create_transform_job(**job)["TransformJobArn"])
