"""What the build project's CodeBuild environment gives ``python -m pipelines run --sagemaker``, in moto's account:
the tests that build the SageMaker definition offline share it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto import mock_aws

ACCOUNT = "123456789012"  # moto's account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/test-execution"
ARTIFACT_BUCKET = "test-artifacts"
DATA_BUCKET = "test-data"
TRACKING_SERVER_ARN = (
    f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:mlflow-tracking-server/review-sentiment-dev-mlflow"
)
ENVIRONMENT = {
    "SAGEMAKER_PIPELINE_ROLE_ARN": ROLE_ARN,
    "ARTIFACT_BUCKET": ARTIFACT_BUCKET,
    "DATA_BUCKET": DATA_BUCKET,
    # With context mlflowTrackingServer, the build project passes the registry stack's tracking server.
    "MLFLOW_TRACKING_SERVER_ARN": TRACKING_SERVER_ARN,
}


@contextmanager
def mocked_aws() -> Iterator[boto3.Session]:
    """A moto session with the artifacts bucket the definition's code uploads go to."""
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)
        yield session
