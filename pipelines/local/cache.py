"""Step caching, like SageMaker's ``CacheConfig``: a step whose request is unchanged reuses earlier outputs.

SageMaker keys the cache on the step's arguments, which include the S3 URIs of its inputs. Locally the key is
stricter: the sha256 of the step's resolved request (script, arguments or hyperparameters, instance settings)
with every input replaced by the hash of its *content*, plus the hash of the code folder. Editing the
processing script or the sample CSV therefore misses the cache; rerunning after a failed training hits it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.local.files import write_json_atomic

_IGNORED_NAMES = {"__pycache__", ".DS_Store", ".ipynb_checkpoints"}
_CHUNK = 1 << 20

# Hashing model.tar.gz is the slowest part of a cache lookup; the same file is hashed for the cache key of
# evaluation and for the registry's lineage, so remember results by (path, size, mtime) within a process.
_file_hashes: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _file_hashes:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        _file_hashes[memo_key] = digest.hexdigest()
    return _file_hashes[memo_key]


def content_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's relative paths and file contents (caches and bytecode ignored)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot hash {path}: no such file or folder")
    digest = hashlib.sha256()
    for file in sorted(_files(path)):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(b"\0")
        digest.update(file_sha256(file).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(folder):
        subdirectories[:] = [name for name in subdirectories if name not in _IGNORED_NAMES]
        found.extend(
            Path(directory) / name
            for name in files
            if name not in _IGNORED_NAMES and not name.endswith(".pyc")
        )
    return found


def cache_key(request: dict[str, Any]) -> str:
    """sha256 of the request as canonical JSON (sorted keys), so the key does not depend on dict order."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    step: str
    key: str
    execution_id: str
    """The execution whose outputs are reused: SageMaker's ``CacheHitResult.SourcePipelineExecutionArn``."""
    outputs: dict[str, str]
    """Output name -> S3 URI."""
    created: str


class StepCache:
    """``cache/<step>/<key>.json`` files; an entry whose outputs are gone is a miss, not an error."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, step: str, key: str) -> Path:
        return self.root / step / f"{key}.json"

    def lookup(self, step: str, key: str, exists: Any) -> CacheEntry | None:
        """The entry for ``key`` if every output it names still ``exists(uri)``."""
        path = self._path(step, key)
        try:
            entry = CacheEntry(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)  # a corrupted entry only costs a rerun of the step
            return None
        return entry if all(exists(uri) for uri in entry.outputs.values()) else None

    def store(self, entry: CacheEntry) -> None:
        write_json_atomic(self._path(entry.step, entry.key), asdict(entry))
