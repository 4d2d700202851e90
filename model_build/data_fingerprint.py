"""A digest of what an S3 input holds, so SageMaker's step cache misses when the data changes.

SageMaker Pipelines keys its step cache on the step's arguments, not on the data behind an S3 URI: new
reviews uploaded under the same ``InputDataUrl`` would let ``ProcessReviews`` reuse a run on the old ones
for the cache's 30 days. The runner therefore lists the input before it starts an execution and passes this
digest as a pipeline parameter (``InputDataFingerprint``) that the processing job carries in its environment,
so the step's arguments change exactly when the data does. (The local mode hashes the files themselves.)

The digest covers every object a job's ``S3Prefix`` input downloads: the keys under the URI taken as a prefix
(a single-file URI included), each key relative to it with its size and ETag (S3's content hash for a plain
upload; for a multipart upload it changes with the content too). Listing costs one ``ListObjectsV2`` call per
1,000 objects; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
from typing import Any

DIGEST_LENGTH = 16


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/prefix`` -> (bucket, key prefix); anything else is refused."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ValueError(f"{uri!r} is not an S3 URI (s3://bucket/prefix)")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def fingerprint(s3: Any, uri: str) -> str:
    """The digest of the objects under ``uri`` (see the module doc); ``s3`` is a boto3 S3 client."""
    bucket, prefix = split_s3_uri(uri)
    sha = hashlib.sha256()
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            sha.update(f"{relative}\0{item['Size']}\0{item.get('ETag', '')}\n".encode())
            count += 1
    sha.update(f"{count} objects".encode())
    return sha.hexdigest()[:DIGEST_LENGTH]
