"""A stand-in for the Feature Store runtime API on 127.0.0.1, so the processing step ingests as on AWS.

The processing script calls boto3's ``sagemaker-featurestore-runtime`` client; with
``AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME`` pointing here, its REST calls land in this server, which
answers as the service does (same paths, same JSON, ``ValidationError`` for a bad record):

- ``PUT /FeatureGroup/{name}`` PutRecord, ``POST /BatchWriteRecord``
- ``GET /FeatureGroup/{name}?RecordIdentifierValueAsString=..`` GetRecord, ``POST /BatchGetRecord``
- ``DELETE /FeatureGroup/{name}?RecordIdentifierValueAsString=..&EventTime=..`` DeleteRecord

Accepted records are buffered and written to the offline store in batches (one Parquet file per thousand
records rather than per record); reads and deletes flush first, and so does stopping the server.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from pipelines.local.feature_store import FeatureStore, FeatureStoreError, Row, as_strings, parse_record

ENDPOINT_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME"
FLUSH_EVERY = 1000


class _ResourceNotFound(LookupError):
    pass


class FeatureStoreServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: FeatureStore, feature_group_name: str, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.store = store
        self.feature_group_name = feature_group_name
        self.ingested = 0
        self._buffer: list[tuple[Row, datetime]] = []
        self._buffer_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        """Each accepted connection, with TCP_NODELAY: headers and body go out in two writes, and without it
        Nagle's algorithm and the client's delayed ACK hold the second one back for 40 ms, on every one of
        thousands of PutRecord calls."""
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    @property
    def endpoint_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def check_group(self, name_or_arn: str) -> None:
        name = unquote(name_or_arn).rsplit("feature-group/", 1)[-1]
        if name != self.feature_group_name:
            raise _ResourceNotFound(
                f"Resource Not Found: feature group {name!r} does not exist (local: {self.feature_group_name!r})"
            )

    def put(self, record: list[dict[str, Any]]) -> None:
        row = parse_record(record)
        with self._buffer_lock:
            self._buffer.append((row, datetime.now(UTC)))
            full = len(self._buffer) >= FLUSH_EVERY
        if full:
            self.flush()

    def flush(self) -> None:
        with self._buffer_lock:
            batch, self._buffer = self._buffer, []
            if batch:
                self.store.write([row for row, _ in batch], [invoked for _, invoked in batch])
                self.ingested += len(batch)


class _Handler(BaseHTTPRequestHandler):
    server: FeatureStoreServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the processing step's own output is what the console shows."""

    def do_PUT(self) -> None:
        self._handle(self._put_record)

    def do_GET(self) -> None:
        self._handle(self._get_record)

    def do_DELETE(self) -> None:
        self._handle(self._delete_record)

    def do_POST(self) -> None:
        routes = {"/BatchWriteRecord": self._batch_write, "/BatchGetRecord": self._batch_get}
        self._handle(routes.get(urlparse(self.path).path, self._unknown))

    # --- operations
    def _put_record(self) -> dict[str, Any]:
        self.server.check_group(self._group())
        self.server.put(self._body().get("Record", []))
        return {}

    def _get_record(self) -> dict[str, Any]:
        self.server.check_group(self._group())
        self.server.flush()
        row = self.server.store.get_record(self._query("RecordIdentifierValueAsString"))
        return {} if row is None else {"Record": _select(row, self._query_list("FeatureName"))}

    def _delete_record(self) -> dict[str, Any]:
        self.server.check_group(self._group())
        self.server.flush()
        self.server.store.delete_record(
            self._query("RecordIdentifierValueAsString"), self._query("EventTime")
        )
        return {}

    def _batch_write(self) -> dict[str, Any]:
        errors = []
        for entry in self._body().get("Entries", []):
            try:
                self.server.check_group(entry.get("FeatureGroupName", ""))
                self.server.put(entry.get("Record", []))
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

    def _batch_get(self) -> dict[str, Any]:
        self.server.flush()
        records, errors = [], []
        for identifier in self._body().get("Identifiers", []):
            group = identifier.get("FeatureGroupName", "")
            for record_id in identifier.get("RecordIdentifiersValueAsString", []):
                try:
                    self.server.check_group(group)
                except _ResourceNotFound as error:
                    errors.append(_batch_error(group, record_id, "ResourceNotFound", str(error)))
                    continue
                row = self.server.store.get_record(record_id)
                if row is not None:
                    records.append(
                        {
                            "FeatureGroupName": group,
                            "RecordIdentifierValueAsString": record_id,
                            "Record": _select(row, identifier.get("FeatureNames")),
                        }
                    )
        return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": []}

    def _unknown(self) -> dict[str, Any]:
        raise FeatureStoreError(f"the local Feature Store does not implement {self.command} {self.path}")

    # --- plumbing
    def _handle(self, operation: Any) -> None:
        # Read the whole body first: on a kept-alive connection, a body left unread after an early error
        # would be parsed as the start of the next request.
        length = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(length) if length else b""
        try:
            self._answer(HTTPStatus.OK, operation())
        except FeatureStoreError as error:
            self._answer(HTTPStatus.BAD_REQUEST, {"message": str(error)}, "ValidationError")
        except _ResourceNotFound as error:
            self._answer(HTTPStatus.NOT_FOUND, {"message": str(error)}, "ResourceNotFound")
        except json.JSONDecodeError as error:
            self._answer(
                HTTPStatus.BAD_REQUEST, {"message": f"the body is not JSON: {error}"}, "ValidationError"
            )
        except Exception as error:  # the client sees InternalFailure and the runner's console the reason
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": repr(error)}, "InternalFailure")

    def _answer(self, status: HTTPStatus, body: dict[str, Any], error_type: str | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(payload)

    def _group(self) -> str:
        path = urlparse(self.path).path
        if not path.startswith("/FeatureGroup/"):
            raise FeatureStoreError(f"the local Feature Store does not implement {self.command} {self.path}")
        return path.removeprefix("/FeatureGroup/")

    def _body(self) -> dict[str, Any]:
        return json.loads(self._raw_body or b"{}")

    def _query_list(self, name: str) -> list[str]:
        return parse_qs(urlparse(self.path).query).get(name, [])

    def _query(self, name: str) -> str:
        values = self._query_list(name)
        if not values:
            raise FeatureStoreError(f"the request has no {name}")
        return values[0]


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


@contextmanager
def serve(store: FeatureStore, feature_group_name: str) -> Iterator[FeatureStoreServer]:
    """Serve on a free port for the duration of the block; every accepted record is written when it ends."""
    server = FeatureStoreServer(store, feature_group_name)
    thread = threading.Thread(target=server.serve_forever, name="feature-store", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        server.flush()
