"""A stand-in for the Feature Store runtime API on 127.0.0.1, so the processing step ingests as on AWS.

The processing script calls boto3's ``sagemaker-featurestore-runtime`` client; with
``AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME`` pointing here, its REST calls land in this server, which
answers as the service does: the operations' methods and paths of the service model botocore ships
(:data:`OPERATIONS`, checked against it by the tests), the same JSON, and the model's errors with their HTTP
statuses (``ValidationError`` 400 for a bad record, ``ResourceNotFound`` 404 for another feature group,
``InternalFailure`` 500), named in the ``x-amzn-ErrorType`` header that botocore reads:

- ``PUT /FeatureGroup/{name}`` PutRecord, ``POST /BatchWriteRecord``
- ``GET /FeatureGroup/{name}?RecordIdentifierValueAsString=..`` GetRecord, ``POST /BatchGetRecord``
- ``DELETE /FeatureGroup/{name}?RecordIdentifierValueAsString=..&EventTime=..`` DeleteRecord

A request for anything else is a ``ValidationError`` naming it. The feature group may be named by its name or
its ARN, as the service takes either.

It is a Starlette app served by uvicorn on a background thread, as the endpoint server
(``model_deploy/local/server.py``) and the page (``pipelines/ui/server.py``) are. Accepted records are
buffered and written to the offline store in batches (one Parquet file per thousand records rather than per
record); reads and deletes flush first, and so does stopping the server, in :func:`serve`, so that a failed
write fails the step rather than a log line nobody reads. PutRecord, called once per record by 16 threads of
every processing instance, only checks the record and appends it to the buffer, on the event loop: a hop to
the thread pool cost more than that (about 110 us a call). What touches the store (a flush, a read, a delete)
runs in Starlette's thread pool, so that writing Parquet does not hold up the loop and the other instances'
requests.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipelines.local.feature_store import FeatureStore, FeatureStoreError, Row, as_strings, parse_record

ENDPOINT_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME"
FLUSH_EVERY = 1000
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0
"""Past uvicorn's graceful shutdown (30 s for the requests in flight), so that a stuck server is an error."""


class _ResourceNotFound(LookupError):
    pass


class _InternalFailure(RuntimeError):
    """Anything else an operation raised: the client sees ``InternalFailure`` with the error's repr."""


class LocalFeatureGroup:
    """The one feature group the server answers for, and the records accepted but not yet written."""

    def __init__(self, store: FeatureStore, feature_group_name: str) -> None:
        self.store = store
        self.feature_group_name = feature_group_name
        self.ingested = 0
        """Records written to the offline store so far (buffered ones count once flushed)."""
        self._buffer: list[tuple[Row, datetime]] = []
        self._buffer_lock = threading.Lock()
        """Held only to append or take the buffer, so that a put never waits for a write."""
        self._write_lock = threading.Lock()
        """Held for a whole flush: a flush returns only once every record accepted before it is written, even
        those another flush took, so a read after it sees them."""

    def check_group(self, name_or_arn: str) -> None:
        name = unquote(name_or_arn).rsplit("feature-group/", 1)[-1]
        if name != self.feature_group_name:
            raise _ResourceNotFound(
                f"Resource Not Found: feature group {name!r} does not exist (local: {self.feature_group_name!r})"
            )

    def put(self, record: list[dict[str, Any]]) -> None:
        """Check the record and buffer it; :attr:`full` says when to :meth:`flush`."""
        row = parse_record(record)
        with self._buffer_lock:
            self._buffer.append((row, datetime.now(UTC)))

    @property
    def full(self) -> bool:
        return len(self._buffer) >= FLUSH_EVERY

    def flush(self) -> None:
        with self._write_lock:
            with self._buffer_lock:
                batch, self._buffer = self._buffer, []
            if batch:
                self.store.write([row for row, _ in batch], [invoked for _, invoked in batch])
                self.ingested += len(batch)


# ------------------------------------------------------------------------------------------------ operations
@dataclass(frozen=True)
class _Call:
    """One request as an operation reads it; the body is read on the event loop, before the operation runs."""

    request: Request
    body: bytes

    @property
    def group(self) -> str:
        """The ``{FeatureGroupName}`` of the path (a name or an ARN), empty for the batch operations."""
        return str(self.request.path_params.get("FeatureGroupName", ""))

    def json(self) -> dict[str, Any]:
        document = json.loads(self.body or b"{}")
        if not isinstance(document, dict):
            raise FeatureStoreError(
                f"the body of {self.request.method} {self.request.url.path} is not a JSON object"
            )
        return document

    def query_list(self, name: str) -> list[str]:
        return [value for value in self.request.query_params.getlist(name) if value]

    def query_value(self, name: str) -> str:
        values = self.query_list(name)
        if not values:
            raise FeatureStoreError(f"the request has no {name}")
        return values[0]


def _put_record(group: LocalFeatureGroup, call: _Call) -> dict[str, Any]:
    group.check_group(call.group)
    group.put(call.json().get("Record", []))
    return {}


def _get_record(group: LocalFeatureGroup, call: _Call) -> dict[str, Any]:
    group.check_group(call.group)
    group.flush()
    row = group.store.get_record(call.query_value("RecordIdentifierValueAsString"))
    return {} if row is None else {"Record": _select(row, call.query_list("FeatureName"))}


def _delete_record(group: LocalFeatureGroup, call: _Call) -> dict[str, Any]:
    group.check_group(call.group)
    group.flush()
    group.store.delete_record(
        call.query_value("RecordIdentifierValueAsString"), call.query_value("EventTime")
    )
    return {}


def _batch_write(group: LocalFeatureGroup, call: _Call) -> dict[str, Any]:
    errors = []
    for entry in call.json().get("Entries", []):
        try:
            group.check_group(entry.get("FeatureGroupName", ""))
            group.put(entry.get("Record", []))
        except (FeatureStoreError, _ResourceNotFound) as error:
            errors.append(
                {
                    "FeatureGroupName": entry.get("FeatureGroupName", ""),
                    "ErrorCode": "ValidationError"
                    if isinstance(error, FeatureStoreError)
                    else "ResourceNotFound",
                    "ErrorMessage": str(error),
                    "Record": entry.get("Record", []),
                }
            )
    return {"Errors": errors, "UnprocessedEntries": []}


def _batch_get(group: LocalFeatureGroup, call: _Call) -> dict[str, Any]:
    group.flush()
    records, errors = [], []
    for identifier in call.json().get("Identifiers", []):
        name = identifier.get("FeatureGroupName", "")
        for record_id in identifier.get("RecordIdentifiersValueAsString", []):
            try:
                group.check_group(name)
            except _ResourceNotFound as error:
                errors.append(_batch_error(name, record_id, "ResourceNotFound", str(error)))
                continue
            row = group.store.get_record(record_id)
            if row is not None:
                records.append(
                    {
                        "FeatureGroupName": name,
                        "RecordIdentifierValueAsString": record_id,
                        "Record": _select(row, identifier.get("FeatureNames")),
                    }
                )
    return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": []}


def _select(row: Row, feature_names: list[str] | None) -> list[dict[str, str]]:
    record = as_strings(row)
    return [entry for entry in record if entry["FeatureName"] in feature_names] if feature_names else record


def _batch_error(group: str, record_id: str, code: str, message: str) -> dict[str, str]:
    return {
        "FeatureGroupName": group,
        "RecordIdentifierValueAsString": record_id,
        "ErrorCode": code,
        "ErrorMessage": message,
    }


Operation = Callable[[LocalFeatureGroup, _Call], dict[str, Any]]

OPERATIONS: dict[str, tuple[str, str, Operation, bool]] = {
    "PutRecord": ("PUT", "/FeatureGroup/{FeatureGroupName}", _put_record, True),
    "GetRecord": ("GET", "/FeatureGroup/{FeatureGroupName}", _get_record, False),
    "DeleteRecord": ("DELETE", "/FeatureGroup/{FeatureGroupName}", _delete_record, False),
    "BatchWriteRecord": ("POST", "/BatchWriteRecord", _batch_write, False),
    "BatchGetRecord": ("POST", "/BatchGetRecord", _batch_get, False),
}
"""Operation name -> (method, request URI as the service model spells it, what it does, whether it runs on
the event loop: only what never touches the store)."""


# ---------------------------------------------------------------------------------------------------- the app
def _endpoint(operation: Operation, on_loop: bool) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        group: LocalFeatureGroup = request.app.state.feature_group
        call = _Call(request, await request.body())
        try:
            answer = operation(group, call) if on_loop else await run_in_threadpool(operation, group, call)
            if group.full:
                await run_in_threadpool(group.flush)
        except (FeatureStoreError, _ResourceNotFound, json.JSONDecodeError):
            raise
        except Exception as error:  # the client sees InternalFailure, and the step's log the reason
            raise _InternalFailure(repr(error)) from error
        return JSONResponse(answer)

    return endpoint


def _error(status: int, error_type: str, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": error_type})


async def _validation_error(_: Request, error: Exception) -> Response:
    if isinstance(error, json.JSONDecodeError):
        return _error(400, "ValidationError", f"the body is not JSON: {error}")
    return _error(400, "ValidationError", str(error))


async def _not_found(_: Request, error: Exception) -> Response:
    return _error(404, "ResourceNotFound", str(error))


async def _internal_failure(_: Request, error: Exception) -> Response:
    return _error(500, "InternalFailure", str(error))


async def _not_implemented(request: Request, _: Exception) -> Response:
    """What no route answers (another path or method): the service's ``ValidationError``, naming it."""
    return _error(
        400,
        "ValidationError",
        f"the local Feature Store does not implement {request.method} {request.url.path}",
    )


def build_app(group: LocalFeatureGroup) -> Starlette:
    routes = [
        # ``:path``: a feature group ARN arrives with its "/" percent-encoded, and uvicorn decodes the path.
        Route(
            uri.replace("{FeatureGroupName}", "{FeatureGroupName:path}"),
            _endpoint(run, on_loop),
            methods=[method],
        )
        for method, uri, run, on_loop in OPERATIONS.values()
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            FeatureStoreError: _validation_error,
            json.JSONDecodeError: _validation_error,
            _ResourceNotFound: _not_found,
            _InternalFailure: _internal_failure,
            HTTPException: _not_implemented,
        },
    )
    app.state.feature_group = group
    return app


# ----------------------------------------------------------------------------------------------------- uvicorn
@dataclass
class FeatureStoreServer:
    """The stand-in running on a background thread of this process; :func:`serve` starts and stops it."""

    group: LocalFeatureGroup
    server: uvicorn.Server
    sock: socket.socket
    thread: threading.Thread

    @property
    def endpoint_url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def ingested(self) -> int:
        return self.group.ingested

    def stop(self) -> None:
        """Let the requests in flight finish, close the connections, and end the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=STOP_TIMEOUT_SECONDS)
        if self.thread.is_alive():
            raise RuntimeError(
                f"the local Feature Store runtime stand-in did not stop within {STOP_TIMEOUT_SECONDS:g} s"
            )


def _loopback_socket() -> socket.socket:
    """A listening socket on a free loopback port. ``IPPROTO_TCP``, not 0: asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on accepted sockets whose protocol says TCP, and with it on, the client's delayed ACK
    held back every answer by 40 ms, on each of thousands of PutRecord calls."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((HOST, 0))
    sock.listen(512)
    return sock


def start(store: FeatureStore, feature_group_name: str) -> FeatureStoreServer:
    """Start serving on a free port; returns once uvicorn accepts connections."""
    group = LocalFeatureGroup(store, feature_group_name)
    config = uvicorn.Config(
        build_app(group),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    sock = _loopback_socket()
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="feature-store", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
        raise RuntimeError(
            f"the local Feature Store runtime stand-in did not start within {START_TIMEOUT_SECONDS:g} s "
            "(its error, if any, is above)"
        )
    return FeatureStoreServer(group, server, sock, thread)


@contextmanager
def serve(store: FeatureStore, feature_group_name: str) -> Iterator[FeatureStoreServer]:
    """Serve on a free port for the duration of the block; every accepted record is written when it ends."""
    running = start(store, feature_group_name)
    try:
        yield running
    finally:
        try:
            running.stop()
        finally:  # whether or not it stopped in time: what it accepted is written, or the error says why not
            running.sock.close()
            running.group.flush()
