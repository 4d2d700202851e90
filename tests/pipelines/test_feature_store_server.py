"""The Feature Store runtime stand-in against botocore's service model and boto3's client: the operations'
methods and paths, the errors' codes and statuses, feature groups named by ARN, batching and stopping.

The answers' shapes for the common operations are in ``test_feature_store.py``
(``test_runtime_api_stand_in_answers_boto3_as_the_service_does``); this file covers the rest of the contract.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pipelines.local import feature_store_server
from pipelines.local.feature_store import FeatureStore
from pipelines.local.feature_store_server import OPERATIONS, FeatureStoreServer, serve
from tests.pipelines.test_feature_store import GROUP, record

ARN = f"arn:aws:sagemaker:us-east-1:123456789012:feature-group/{GROUP}"
SERVICE = botocore.session.get_session().get_service_model("sagemaker-featurestore-runtime")


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(tmp_path / "offline-store")


@pytest.fixture
def server(store: FeatureStore) -> Iterator[FeatureStoreServer]:
    with serve(store, GROUP) as running:
        yield running


def client_of(server: FeatureStoreServer) -> Any:
    return boto3.client(
        "sagemaker-featurestore-runtime",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"total_max_attempts": 1}),  # an error is seen once, not retried
    )


def raw(
    server: FeatureStoreServer, method: str, path: str, body: bytes = b""
) -> tuple[int, str, dict[str, Any]]:
    """``(status, x-amzn-ErrorType, JSON body)`` of one request sent without boto3."""
    host, port = server.sock.getsockname()[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        return answer.status, answer.getheader("x-amzn-ErrorType") or "", json.loads(answer.read() or b"{}")
    finally:
        connection.close()


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_each_operation_answers_at_the_method_and_path_of_the_service_model(operation: str) -> None:
    method, uri, _, _ = OPERATIONS[operation]
    model = SERVICE.operation_model(operation).http
    assert (method, uri) == (model["method"], model["requestUri"])


@pytest.mark.parametrize(
    ("error", "status"), [("ValidationError", 400), ("ResourceNotFound", 404), ("InternalFailure", 500)]
)
def test_the_errors_answered_have_the_service_models_status(error: str, status: int) -> None:
    assert SERVICE.shape_for(error).metadata["error"]["httpStatusCode"] == status


def test_a_feature_group_named_by_its_arn_is_the_same_group(server: FeatureStoreServer) -> None:
    client = client_of(server)
    client.put_record(FeatureGroupName=ARN, Record=record("a"))
    got = client.get_record(FeatureGroupName=ARN, RecordIdentifierValueAsString="a")
    assert {f["FeatureName"]: f["ValueAsString"] for f in got["Record"]}["review_id"] == "a"
    client.delete_record(
        FeatureGroupName=ARN, RecordIdentifierValueAsString="a", EventTime="2024-06-01T00:00:00Z"
    )
    assert "Record" not in client.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="a")
    other = ARN.replace(GROUP, "another-group")
    with pytest.raises(ClientError) as missing:
        client.get_record(FeatureGroupName=other, RecordIdentifierValueAsString="a")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "'another-group' does not exist" in missing.value.response["Error"]["Message"]


def test_an_operation_it_does_not_implement_is_a_validation_error_naming_it(
    server: FeatureStoreServer,
) -> None:
    with pytest.raises(ClientError) as refused:
        client_of(server).list_records(FeatureGroupName=GROUP)
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert f"does not implement POST /FeatureGroup/{GROUP}/ListRecords" in error["Message"]
    assert raw(server, "PATCH", "/BatchGetRecord")[:2] == (400, "ValidationError")


def test_a_body_that_is_not_json_or_a_missing_query_value_is_a_validation_error(
    server: FeatureStoreServer,
) -> None:
    status, code, body = raw(server, "PUT", f"/FeatureGroup/{GROUP}", b"{not json")
    assert (status, code) == (400, "ValidationError") and "the body is not JSON" in body["message"]
    status, code, body = raw(server, "POST", "/BatchWriteRecord", b"[]")
    assert (status, code) == (400, "ValidationError") and "is not a JSON object" in body["message"]
    status, code, body = raw(server, "GET", f"/FeatureGroup/{GROUP}?RecordIdentifierValueAsString=")
    assert (status, code, body) == (
        400,
        "ValidationError",
        {"message": "the request has no RecordIdentifierValueAsString"},
    )
    # The connection after an error still serves: a kept-alive request is not mistaken for a body left unread.
    host, port = server.sock.getsockname()[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        for _ in range(2):
            connection.request("PUT", f"/FeatureGroup/{GROUP}", body=b"{not json")
            answer = connection.getresponse()
            assert (answer.status, json.loads(answer.read())["message"][:20]) == (400, "the body is not JSON")
        connection.request("PUT", f"/FeatureGroup/{GROUP}", body=json.dumps({"Record": record("k")}).encode())
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_an_unexpected_failure_is_an_internal_failure_with_its_reason(
    server: FeatureStoreServer, store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(record_id: str) -> None:
        raise OSError(f"disk gone while reading {record_id}")

    monkeypatch.setattr(store, "get_record", broken)
    with pytest.raises(ClientError) as failed:
        client_of(server).get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="a")
    assert failed.value.response["Error"]["Code"] == "InternalFailure"
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "disk gone while reading a" in failed.value.response["Error"]["Message"]


def test_records_are_written_every_flush_every_records_and_the_rest_when_it_stops(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feature_store_server, "FLUSH_EVERY", 3)
    with serve(store, GROUP) as server:
        client = client_of(server)
        for review_id in "abcd":
            client.put_record(FeatureGroupName=GROUP, Record=record(review_id))
        assert server.ingested == 3  # the fourth waits in the buffer
        assert store.query("SELECT count(*) FROM reviews_history")[1] == [(3,)]
        written = client.batch_write_record(
            Entries=[{"FeatureGroupName": GROUP, "Record": record(review_id)} for review_id in "efg"]
        )
        assert written["Errors"] == [] and server.ingested == 7
        client.put_record(FeatureGroupName=GROUP, Record=record("h"))
        port = server.sock.getsockname()[1]
    assert server.ingested == 8
    assert store.query("SELECT count(*) FROM reviews")[1] == [(8,)]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_write_that_fails_when_the_server_stops_fails_the_block(store: FeatureStore) -> None:
    def full_disk(*_: Any, **__: Any) -> int:
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left on device"), serve(store, GROUP) as server:
        client_of(server).put_record(FeatureGroupName=GROUP, Record=record("a"))
        store.write = full_disk  # type: ignore[method-assign]
