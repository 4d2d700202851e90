"""The jobs' code, uploaded to S3 under keys named by its content, so an unchanged step is a cache hit.

SageMaker Pipelines reuses a step's earlier run when the step's arguments are the same as then (its cache
key is the step definition). A job's code travels as S3 URIs in those arguments, so the URIs must change
with the code and only with it. The SDK names them otherwise: ``ModelTrainer`` uploads its source, driver and
local channels under ``<base job name>-<timestamp>/``, so every build changes ``TrainModel``; the processing
code goes under a hash that includes the checkout's absolute path, which CodeBuild makes new on every build
(``/codebuild/output/src<random>/...``).

Here a :class:`CodeSet` is a set of files under a root; its digest is the SHA-256 of their relative paths and
bytes (caches left out, :data:`IGNORED`), so the same code has the same digest on a laptop and in CodeBuild.
A step's code set is its script, the modules of the steps folder it imports (found by reading its
``import`` statements, transitively) and the requirements file: editing ``train.py`` changes the training step
alone, editing ``training_data.py`` (which ``train.py`` and ``evaluate.py`` import) changes both and leaves
processing, and its cache, alone.

A set is uploaded to ``s3://<bucket>/<prefix>/<digest>/<name>/`` (a folder) or to
``.../<digest>/bundle/sourcedir.tar.gz`` (a bundle built byte-for-byte reproducibly: sorted entries, zero
times and owners, a zero gzip time). Uploading the same digest again writes the same bytes to the same keys,
so a build never needs to know what is there already.

No SageMaker import: only ``boto3``'s S3 client, passed in.
"""

from __future__ import annotations

import ast
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

BUNDLE_FOLDER = "bundle"
"""A bundle's own folder under its digest: a processing job downloads the whole folder of its bundle."""

BUNDLE_NAME = "sourcedir.tar.gz"
"""What ``FrameworkProcessor`` unpacks in the container (its ``runproc.sh`` looks for this name)."""

DIGEST_LENGTH = 16
"""Hex characters of the SHA-256 kept in keys: 64 bits, far from a collision among a project's versions."""


def _ignored(relative: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in IGNORED)


def _imported_names(path: Path) -> set[str]:
    """The top-level names a Python file imports absolutely (``import a.b``, ``from a import b``: ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@dataclass(frozen=True)
class CodeSet:
    """Files under ``root`` that travel together to a job."""

    root: Path
    paths: tuple[Path, ...]

    @classmethod
    def folder(cls, folder: Path) -> CodeSet:
        """Every file of the folder but :data:`IGNORED` ones; an empty or missing folder is an error."""
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder: nothing to upload")
        paths = tuple(
            path
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not _ignored(path.relative_to(folder))
        )
        if not paths:
            raise FileNotFoundError(f"{folder} holds no files to upload")
        return cls(folder, paths)

    @classmethod
    def script(cls, folder: Path, script: str, always: tuple[str, ...] = ()) -> CodeSet:
        """``script``, the modules (``<name>.py``) and packages of ``folder`` it imports, transitively,
        and the files named in ``always`` (the requirements); a missing script or file is an error."""
        wanted = {folder / name for name in (script, *always)}
        missing = sorted(str(path) for path in wanted if not path.is_file())
        if missing:
            raise FileNotFoundError(f"the code of {script} is incomplete: {', '.join(missing)} missing")
        queue = [folder / script]
        packages: set[Path] = set()
        while queue:
            for name in sorted(_imported_names(queue.pop())):
                package = folder / name
                if (package / "__init__.py").is_file():
                    if package not in packages:
                        packages.add(package)
                        files = cls.folder(package).paths
                        wanted.update(files)
                        queue.extend(path for path in files if path.suffix == ".py")
                elif (module := folder / f"{name}.py").is_file() and module not in wanted:
                    wanted.add(module)
                    queue.append(module)
        return cls(folder, tuple(sorted(wanted)))

    def names(self) -> tuple[str, ...]:
        """The files' paths relative to the root, as they land in the job (``/`` separated)."""
        return tuple(path.relative_to(self.root).as_posix() for path in self.paths)

    @property
    def digest(self) -> str:
        """SHA-256 of the relative paths and contents (not the absolute path, times or owners), shortened."""
        sha = hashlib.sha256()
        for name, path in zip(self.names(), self.paths, strict=True):
            content = path.read_bytes()
            sha.update(b"%d:%s%d:" % (len(name.encode()), name.encode(), len(content)))
            sha.update(content)
        return sha.hexdigest()[:DIGEST_LENGTH]

    def bundle(self) -> bytes:
        """The set as a ``tar.gz`` whose bytes depend only on what :attr:`digest` reads (and exec bits)."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, path in zip(self.names(), self.paths, strict=True):
                content = path.read_bytes()
                info = tarfile.TarInfo(name)
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

    def folder(self, code: CodeSet, name: str) -> str:
        """Upload the files to ``<digest>/<name>/``; return that folder's S3 URI."""
        root = self._key(code.digest, name)
        for relative, path in zip(code.names(), code.paths, strict=True):
            self.s3.put_object(Bucket=self.bucket, Key=f"{root}/{relative}", Body=path.read_bytes())
        return f"s3://{self.bucket}/{root}"

    def bundle(self, code: CodeSet) -> str:
        """Upload :meth:`CodeSet.bundle` to ``<digest>/bundle/sourcedir.tar.gz``; return its S3 URI."""
        key = self._key(code.digest, BUNDLE_FOLDER, BUNDLE_NAME)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=code.bundle())
        return f"s3://{self.bucket}/{key}"
