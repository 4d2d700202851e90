"""The jobs' code, uploaded to S3 under keys named by its content, so an unchanged step is a cache hit.

SageMaker Pipelines reuses a step's earlier run when the step's arguments are the same as then (its cache
key is the step definition). A job's code travels as S3 URIs in those arguments, so the URIs must change
with the code and only with it. The SDK names them otherwise: ``ModelTrainer`` uploads its source, driver and
local channels under ``<base job name>-<timestamp>/``, so every build changes ``TrainModel``; the processing
code goes under a hash that includes the checkout's absolute path, which CodeBuild makes new on every build
(``/codebuild/output/src<random>/...``).

Here a folder's digest is the SHA-256 of its files' relative paths and bytes, caches left out
(:data:`IGNORED`), so the same code has the same digest on a laptop and in CodeBuild; it is uploaded to
``s3://<bucket>/<prefix>/<digest>/<name>/`` (a folder) or ``.../<digest>/bundle/sourcedir.tar.gz`` (a bundle
built byte-for-byte reproducibly: sorted entries, zero times and owners, a zero gzip time). Uploading the same
digest again writes the same bytes to the same keys, so a build never needs to know what is there.

No SageMaker import: only ``boto3``'s S3 client, passed in.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORED = ("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".DS_Store")
"""Names skipped anywhere in a folder: caches that differ between machines and that no job reads."""

BUNDLE_NAME = "sourcedir.tar.gz"
"""What ``FrameworkProcessor`` unpacks in the container (its ``runproc.sh`` looks for this name)."""

BUNDLE_FOLDER = "bundle"
"""A bundle's own folder under its digest: a processing job downloads the whole folder of its bundle."""

DIGEST_LENGTH = 16
"""Hex characters of the SHA-256 kept in keys: 64 bits, far from a collision among a project's versions."""


def files(folder: Path) -> list[Path]:
    """The folder's files in a stable order, without :data:`IGNORED` names; an empty or missing folder is an error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: nothing to upload")
    found = [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not any(
            fnmatch.fnmatch(part, pattern) for part in path.relative_to(folder).parts for pattern in IGNORED
        )
    ]
    if not found:
        raise FileNotFoundError(f"{folder} holds no files to upload")
    return found


def digest(folder: Path) -> str:
    """SHA-256 of the relative paths and contents (not the absolute path, times or owners), shortened."""
    sha = hashlib.sha256()
    for path in files(folder):
        name = path.relative_to(folder).as_posix().encode()
        content = path.read_bytes()
        sha.update(b"%d:%s%d:" % (len(name), name, len(content)))
        sha.update(content)
    return sha.hexdigest()[:DIGEST_LENGTH]


def bundle(folder: Path) -> bytes:
    """The folder as a ``tar.gz`` whose bytes depend only on what :func:`digest` reads (and exec bits)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files(folder):
            content = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size = len(content)
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass(frozen=True)
class CodeUploads:
    """Uploads under ``s3://<bucket>/<prefix>/<digest>/``; ``s3`` is a boto3 S3 client."""

    s3: Any
    bucket: str
    prefix: str

    def _key(self, *parts: str) -> str:
        return "/".join(part.strip("/") for part in (self.prefix, *parts) if part.strip("/"))

    def folder(self, folder: Path, name: str) -> str:
        """Upload the folder's files to ``<digest>/<name>/``; return that prefix as an S3 URI."""
        root = self._key(digest(folder), name)
        for path in files(folder):
            self.s3.put_object(
                Bucket=self.bucket,
                Key=f"{root}/{path.relative_to(folder).as_posix()}",
                Body=path.read_bytes(),
            )
        return f"s3://{self.bucket}/{root}"

    def bundle(self, folder: Path) -> str:
        """Upload :func:`bundle` of the folder to ``<digest>/bundle/sourcedir.tar.gz``; return its S3 URI."""
        key = self._key(digest(folder), BUNDLE_FOLDER, BUNDLE_NAME)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=bundle(folder))
        return f"s3://{self.bucket}/{key}"
