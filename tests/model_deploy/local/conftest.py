"""A model archive laid out as training packs it, and helpers that speak HTTP to a running server."""

from __future__ import annotations

import http.client
import shutil
import socket
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

from model_build.pipeline_spec import SERVING_SOURCE_DIR
from pipelines.local.container import pack_model
from pipelines.local.registry import Lineage, ModelRegistry
from pipelines.local.workspace import Workspace
from tests.model_build.review_splits import labelled_model

REPO_ROOT = Path(__file__).resolve().parents[3]
HANDLER = REPO_ROOT / SERVING_SOURCE_DIR / "inference.py"


def pack(model_dir: Path, archive: Path, handler_source: str | None = None) -> Path:
    """``model_dir`` plus ``code/`` as training packs it (the serving folder's modules: the repository's
    handler and the files it loads, or ``handler_source`` as the handler) as a tar.gz."""
    (model_dir / "code").mkdir(exist_ok=True)
    for module in HANDLER.parent.glob("*.py"):
        if module.name != "__init__.py":
            shutil.copy2(module, model_dir / "code" / module.name)
    if handler_source is not None:
        (model_dir / "code" / "inference.py").write_text(handler_source)
    pack_model(model_dir, archive)
    return archive


def with_handler_source(archive: Path, folder: Path, extra_source: str) -> Path:
    """``archive`` with ``extra_source`` appended to its ``code/inference.py``, packed again beside ``folder``."""
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    handler = folder / "code" / "inference.py"
    handler.write_text(handler.read_text() + extra_source)
    packed = folder.parent / f"{folder.name}.tar.gz"
    pack_model(folder, packed)
    return packed


@pytest.fixture(scope="session")
def model_archive(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    model_dir = labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"), max_seq_length=32)
    return pack(model_dir, tmp_path_factory.mktemp("archive") / "model.tar.gz")


def register(workspace: Workspace, archive: Path, name: str = "model") -> int:
    """Copy ``archive`` into the run folder's S3 and register it as a new (pending) version."""
    uri = f"s3://{workspace.artifacts_bucket}/models/{name}/model.tar.gz"
    target = workspace.local_path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(archive, target)
    lineage = Lineage("e", "arn:e", {}, "data/reviews_sample.csv", "0" * 64, "1" * 64, None)
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        package = registry.register(
            workspace.config.model_package_group_name,
            uri,
            lineage,
            content_types=["application/json"],
            response_types=["application/json"],
            inference_instance_types=["ml.m5.large"],
            metrics={},
        )
    return package.version


def request(
    url: str, method: str, path: str, body: str | bytes | None = None, timeout: float = 60, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers, body). Header names: ``Content_Type`` etc."""
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request(method, path, body, {name.replace("_", "-"): v for name, v in headers.items()})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer
