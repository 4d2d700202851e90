"""A registered model served on this machine under the SageMaker hosting contract.

A SageMaker endpoint running the PyTorch serving container unpacks ``model.tar.gz`` into ``/opt/ml/model``,
imports the handler from the model's own ``code/inference.py`` and calls ``model_fn(model_dir)`` once; it then
answers ``GET /ping`` (200 once the model is loaded) and ``POST /invocations`` (the body, with the request's
``Content-Type`` and ``Accept``, through ``input_fn`` -> ``predict_fn`` -> ``output_fn``). This module does the
same with the standard library's HTTP server, so a model version is tried locally exactly as it would serve:

- a handler error with an HTTP ``status_code`` of 4xx (the handler's ``InvalidRequest``, the inference
  toolkit's errors) is answered with that status and ``{"error": message}``;
- any other exception is a 500 with its message, and the server keeps serving;
- a body over :data:`MAX_BODY_BYTES` (SageMaker's real-time payload limit) is refused with 413 before it is
  read; a client that sends ``Expect: 100-continue`` (curl does, for large bodies) gets the 413 instead of
  the go-ahead, so it never sends the body at all.

Unlike the container, nothing is pip-installed from ``code/requirements.txt``: the handler runs in this
interpreter, whose requirements are the training job's (the same versions the handler pins).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker real-time inference refuses request payloads over 6 MB."""
HANDLER_FILE = Path("code") / "inference.py"
HANDLER_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")
PING = "/ping"
INVOCATIONS = "/invocations"
DEFAULT_ACCEPT = "application/json"
"""What the inference toolkit assumes when a request has no ``Accept`` (or ``*/*``)."""


class ServingError(Exception):
    """The model cannot be served: a bad archive, a handler without the expected functions, a busy port."""


# ------------------------------------------------------------------------------------------------- the model
@dataclass
class Endpoint:
    """The loaded model and the handler that loaded it: what one serving worker holds."""

    handler: ModuleType
    model: Any
    model_dir: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """The toolkit's default transform; returns (response body, its content type).

        One request at a time, as one serving worker does: fast tokenizers refuse concurrent use.
        """
        with self._lock:
            data = self.handler.input_fn(body, content_type)
            prediction = self.handler.predict_fn(data, self.model)
            result = self.handler.output_fn(prediction, accept)
        response, response_type = result if isinstance(result, tuple) else (result, accept)
        return (response.encode("utf-8") if isinstance(response, str) else bytes(response)), response_type


def unpack(archive: Path, model_dir: Path) -> Path:
    """Extract ``model.tar.gz`` as SageMaker does into ``/opt/ml/model``; refuse members that would escape."""
    if not archive.is_file():
        raise ServingError(f"the model archive {archive} does not exist")
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(model_dir, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise ServingError(f"cannot unpack the model archive {archive}: {error}") from error
    return model_dir


def load_handler(model_dir: Path) -> ModuleType:
    """Import ``<model_dir>/code/inference.py`` from its path: the model brings its own serving code."""
    path = model_dir / HANDLER_FILE
    if not path.is_file():
        raise ServingError(
            f"the model has no {HANDLER_FILE.as_posix()} (looked in {model_dir}): training copies the serving "
            "handler there, and SageMaker's serving container needs it too"
        )
    name = f"model_inference_{abs(hash(model_dir))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    # The container puts code/ on sys.path, so a handler may import the files next to it.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    missing = [function for function in HANDLER_FUNCTIONS if not callable(getattr(module, function, None))]
    if missing:
        raise ServingError(f"{path} does not define {', '.join(missing)}")
    return module


def load(archive: Path, model_dir: Path) -> Endpoint:
    """Unpack, import the handler, call ``model_fn`` once."""
    unpack(archive, model_dir)
    handler = load_handler(model_dir)
    return Endpoint(handler, handler.model_fn(str(model_dir)), model_dir)


# ------------------------------------------------------------------------------------------------- HTTP
class InferenceServer(ThreadingHTTPServer):
    """One endpoint on one address; ``/ping`` keeps answering while an invocation runs."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], endpoint: Endpoint, max_body_bytes: int = MAX_BODY_BYTES):
        self.endpoint = endpoint
        self.max_body_bytes = max_body_bytes
        try:
            super().__init__(address, RequestHandler)
        except OSError as error:
            raise ServingError(f"cannot listen on {address[0]}:{address[1]}: {error}") from error

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class RequestHandler(BaseHTTPRequestHandler):
    """The two routes of the hosting contract; every answer has a length, JSON errors have ``error``."""

    server: InferenceServer
    protocol_version = "HTTP/1.1"  # keep-alive, and ``Expect: 100-continue`` goes through handle_expect_100
    timeout = 60  # a client that stalls mid-request does not hold a thread for ever

    def do_GET(self) -> None:
        if self.path == PING:
            self._send(HTTPStatus.OK, b"", None)
        else:
            self._not_found()

    def do_POST(self) -> None:
        if self.path != INVOCATIONS:
            self._not_found()
            return
        length = self._checked_length()
        if length is None:
            return
        body = self.rfile.read(length)
        try:
            response, content_type = self.server.endpoint.invoke(
                body, self.headers.get("Content-Type", ""), self.headers.get("Accept") or DEFAULT_ACCEPT
            )
        except Exception as error:  # every failure becomes an answer; the server stays up
            status = getattr(error, "status_code", None)
            if isinstance(status, int) and 400 <= status < 500:
                self._error(status, str(getattr(error, "message", error)))
            else:
                logger.exception("invocation failed")
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")
            return
        self._send(HTTPStatus.OK, response, content_type)

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it, instead of saying ``100 Continue``."""
        if self.path == INVOCATIONS and self._declared_length() > self.server.max_body_bytes:
            self._too_large()
            return False
        return super().handle_expect_100()

    def _checked_length(self) -> int | None:
        """The body's length if it may be read; else the answer is sent and the connection closed."""
        if "Content-Length" not in self.headers:
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length header", close=True)
            return None
        length = self._declared_length()
        if length < 0:
            self._error(HTTPStatus.BAD_REQUEST, "the Content-Length header is not a number", close=True)
            return None
        if length > self.server.max_body_bytes:
            self._too_large()
            return None
        return length

    def _declared_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return -1

    def _too_large(self) -> None:
        limit = self.server.max_body_bytes
        self._error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body is {self._declared_length()} bytes; at most {limit} ({limit / 2**20:g} MB, SageMaker's "
            "real-time payload limit): split the request",
            close=True,  # the unread body is still on the connection
        )

    def _not_found(self) -> None:
        # A POST body to an unknown path is left unread: close rather than read it as the next request.
        self._error(
            HTTPStatus.NOT_FOUND,
            f"no route {self.command} {self.path}; use GET {PING} or POST {INVOCATIONS}",
            close=self.command != "GET",
        )

    def _error(self, status: int, message: str, close: bool = False) -> None:
        self._send(status, json.dumps({"error": message}).encode("utf-8"), "application/json", close)

    def _send(self, status: int, body: bytes, content_type: str | None, close: bool = False) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


# ------------------------------------------------------------------------------------------------- entry points
@dataclass
class ServerHandle:
    """A server answering on a background thread; ``close()`` stops it and removes the unpacked model."""

    server: InferenceServer
    thread: threading.Thread | None
    work_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def endpoint(self) -> Endpoint:
        return self.server.endpoint

    def serve_forever(self) -> None:
        """Serve on the calling thread until ``KeyboardInterrupt`` (or ``shutdown`` from another thread)."""
        self.server.serve_forever()

    def close(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()
        sys.modules.pop(self.endpoint.handler.__name__, None)
        shutil.rmtree(self.work_dir, ignore_errors=True)


def open_server(
    model_archive: Path, host: str = "127.0.0.1", port: int = 8080, max_body_bytes: int = MAX_BODY_BYTES
) -> ServerHandle:
    """Load the model and bind ``host:port`` (0: a free port), without serving yet: see :func:`serve`."""
    work_dir = Path(tempfile.mkdtemp(prefix="mlops-serve-"))
    try:
        endpoint = load(Path(model_archive), work_dir / "model")
        server = InferenceServer((host, port), endpoint, max_body_bytes)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return ServerHandle(server, None, work_dir)


@contextmanager
def serve(
    model_archive: Path, host: str = "127.0.0.1", port: int = 0, max_body_bytes: int = MAX_BODY_BYTES
) -> Iterator[ServerHandle]:
    """Serve ``model_archive`` on a background thread for the ``with`` block; ``handle.url`` is where."""
    handle = open_server(model_archive, host, port, max_body_bytes)
    handle.thread = threading.Thread(target=handle.server.serve_forever, name="inference-server", daemon=True)
    handle.thread.start()
    try:
        yield handle
    finally:
        handle.close()
