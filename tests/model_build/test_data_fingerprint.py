"""The input data's digest: what the SageMaker runner passes so processing misses the cache on new data."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from model_build.data_fingerprint import fingerprint, split_s3_uri

BUCKET = "test-data"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.Session(region_name="us-east-1").client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_the_digest_changes_with_any_object_under_the_prefix_and_only_then(s3) -> None:
    put(s3, "raw/a.csv", b"one")
    put(s3, "raw/b.csv", b"two")
    put(s3, "other/c.csv", b"three")
    first = fingerprint(s3, f"s3://{BUCKET}/raw/")
    assert fingerprint(s3, f"s3://{BUCKET}/raw/") == first and len(first) == 16
    put(s3, "other/d.csv", b"outside the prefix")
    assert fingerprint(s3, f"s3://{BUCKET}/raw/") == first
    put(s3, "raw/b.csv", b"TWO")  # same size, other content
    changed = fingerprint(s3, f"s3://{BUCKET}/raw/")
    assert changed != first
    put(s3, "raw/nested/e.csv", b"more")  # an S3Prefix input downloads nested keys too
    assert fingerprint(s3, f"s3://{BUCKET}/raw/") != changed


def test_a_file_uri_and_an_empty_prefix(s3) -> None:
    put(s3, "raw/reviews.csv", b"one")
    single = fingerprint(s3, f"s3://{BUCKET}/raw/reviews.csv")
    put(s3, "raw/reviews.csv", b"two")
    assert fingerprint(s3, f"s3://{BUCKET}/raw/reviews.csv") != single
    assert fingerprint(s3, f"s3://{BUCKET}/nothing/") != fingerprint(s3, f"s3://{BUCKET}/raw/")


def test_a_location_that_is_not_s3_is_refused() -> None:
    assert split_s3_uri("s3://bucket/a/b") == ("bucket", "a/b")
    with pytest.raises(ValueError, match="not an S3 URI"):
        split_s3_uri("data/reviews_sample.csv")
