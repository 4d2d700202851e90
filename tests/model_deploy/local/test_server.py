"""The local endpoint server over a real loopback socket: the hosting contract, the runtime API, batching.

One server per module hosts the tiny RoBERTa archive as an ad-hoc endpoint (what ``serve VERSION`` does); the
runtime API is exercised with boto3's own ``sagemaker-runtime`` client, as application code would use it.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from model_deploy.local.host import ServingError, load
from model_deploy.local.rollout import runtime_client
from model_deploy.local.server import RunningServer, adhoc_state, start_in_thread
from model_deploy.local.state import PRODUCTION_VARIANT
from pipelines.local.container import pack_model
from tests.model_deploy.local.conftest import request

SMALL_LIMIT = 64 * 1024
"""The server under test refuses bodies over this, so a 413 needs no 6 MB upload."""
NAME = "review-sentiment-dev-version-1"
REVIEWS = [
    "I love this dress, it fits perfectly and the fabric is soft.",
    "Terrible quality, it ripped after one wash. Returning it.",
    "It's okay, nothing special, the color is a bit off.",
]
PREDICTION_FIELDS = {
    "predicted_label",
    "sentiment",
    "probability",
    "probabilities",
    "tokens_read",
    "truncated",
}


@pytest.fixture(scope="module")
def server(model_archive: Path) -> Iterator[RunningServer]:
    state = adhoc_state(model_archive, NAME, 1, max_body_bytes=SMALL_LIMIT)
    state.body_timeout_seconds = 2
    running = start_in_thread(state)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def runtime(server: RunningServer):
    return runtime_client(server.url)


def invoke(server: RunningServer, body: str | bytes, content_type: str, accept: str = "application/json"):
    return request(server.url, "POST", "/invocations", body, Content_Type=content_type, Accept=accept)


def assert_predictions(predictions: list[dict], count: int) -> None:
    assert len(predictions) == count
    for prediction in predictions:
        assert set(prediction) == PREDICTION_FIELDS
        assert prediction["predicted_label"] in (-1, 0, 1)
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["probability"] == max(prediction["probabilities"].values())


# ------------------------------------------------------------------------------------------------- hosting
def test_ping_answers_once_loaded_and_the_handler_is_the_models_own(server: RunningServer) -> None:
    assert request(server.url, "GET", "/ping")[:3:2] == (200, b"")
    assert request(server.url, "GET", f"/endpoints/{NAME}/ping")[0] == 200
    host = server.state.endpoints[NAME].current
    assert host is not None
    assert Path(host.handler.__file__) == host.work_dir / "model" / "code" / "inference.py"  # unpacked


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"features": REVIEWS}), "application/json"),
        (json.dumps({"inputs": REVIEWS}), "application/json; charset=utf-8"),
        ("".join(json.dumps({"features": [review]}) + "\n" for review in REVIEWS), "application/jsonlines"),
        ("\n".join(REVIEWS), "text/csv"),
    ],
    ids=["json-features", "json-inputs", "jsonlines", "csv"],
)
def test_invocations_give_one_prediction_per_review(
    server: RunningServer, body: str, content_type: str
) -> None:
    status, headers, response = invoke(server, body, content_type)
    assert status == 200, response
    assert headers["content-type"] == "application/json"
    assert_predictions(json.loads(response), len(REVIEWS))


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        ("", "application/json", "application/json", 400, "the request body is empty"),
        ('{"features": [', "application/json", "application/json", 400, "the body is not valid JSON"),
        ('{"features": ["ok", 3]}', "application/json", "application/json", 400, "features[1] is a number"),
        ("a review", "text/plain", "application/json", 415, "unsupported content type 'text/plain'"),
        ('["a review"]', "application/json", "text/csv", 406, "cannot answer in 'text/csv'"),
        (json.dumps(["a review"] * 65), "application/json", "application/json", 413, "65 reviews"),
    ],
    ids=["empty", "invalid-json", "not-a-string", "content-type", "accept", "too-many-reviews"],
)
def test_bad_requests_get_the_handlers_status_and_message_and_the_server_keeps_serving(
    server: RunningServer, body: str, content_type: str, accept: str, status: int, message: str
) -> None:
    answer, headers, response = invoke(server, body, content_type, accept)
    assert answer == status
    assert headers["content-type"] == "application/json"
    assert message in json.loads(response)["error"]
    assert invoke(server, json.dumps(REVIEWS[:1]), "application/json")[0] == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: RunningServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # Headers only: a server that tried to read the declared body would wait for it until the timeout.
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(SMALL_LIMIT + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Connection") == "close"
        assert f"at most {SMALL_LIMIT}" in json.loads(response.read())["error"]
    finally:
        connection.close()
    status, _, response = request(
        server.url,
        "POST",
        "/invocations",
        None,
        Content_Type="application/json",
        Content_Length=str(SMALL_LIMIT + 1),
        Expect="100-continue",
    )
    assert status == 413 and b"SageMaker" in response
    assert invoke(server, json.dumps(REVIEWS[:1]), "application/json")[0] == 200


def test_a_body_shorter_than_its_length_gets_408_and_a_closed_connection(server: RunningServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\nshort"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"did not arrive within 2 s" in answer


def test_unknown_paths_and_methods_are_json_errors(server: RunningServer) -> None:
    for method, path, status in [
        ("GET", "/", 404),
        ("POST", "/predict", 404),
        ("GET", "/invocations", 405),
        ("PUT", "/invocations", 405),
        ("DELETE", "/ping", 405),
        ("PATCH", f"/endpoints/{NAME}/invocations", 405),
        ("OPTIONS", "/ping", 405),
    ]:
        answer, headers, response = request(server.url, method, path, b"{}" if method != "GET" else None)
        assert answer == status, (method, path)
        assert headers["content-type"] == "application/json"
        document = json.loads(response)
        assert method in (document.get("error") or document["Message"]) or answer == 404


def test_a_failing_handler_is_a_500_on_the_hosting_path_and_a_model_error_at_runtime(
    server: RunningServer, runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(reviews, model):
        raise RuntimeError("CUDA out of memory")

    host = server.state.endpoints[NAME].current
    with monkeypatch.context() as patch:
        patch.setattr(host.handler, "predict_fn", broken)
        status, _, response = invoke(server, json.dumps(REVIEWS), "application/json")
        assert status == 500
        assert json.loads(response) == {"error": "RuntimeError: CUDA out of memory"}
        with pytest.raises(ClientError) as raised:
            runtime.invoke_endpoint(
                EndpointName=NAME, Body=json.dumps(REVIEWS), ContentType="application/json"
            )
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "CUDA out of memory" in error["OriginalMessage"]
    assert invoke(server, json.dumps(REVIEWS), "application/json")[0] == 200


# ------------------------------------------------------------------------------------------------- runtime API
def test_boto3_invoke_endpoint_gets_predictions_and_the_variant(server: RunningServer, runtime) -> None:
    answer = runtime.invoke_endpoint(
        EndpointName=NAME,
        Body="\n".join(REVIEWS),
        ContentType="text/csv",
        Accept="application/jsonlines",
        CustomAttributes="trace=1",
        InferenceId="request-1",
    )
    assert answer["ContentType"] == "application/jsonlines"
    assert answer["InvokedProductionVariant"] == PRODUCTION_VARIANT
    assert_predictions([json.loads(line) for line in answer["Body"].read().splitlines()], len(REVIEWS))


def test_runtime_errors_are_what_boto3_parses(server: RunningServer, runtime) -> None:
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"{}", ContentType="application/json")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Endpoint no-such-endpoint of account" in unknown.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName=NAME, Body='{"features": 42}', ContentType="application/json")
    error = refused.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "features must be a string or a list of strings" in error["OriginalMessage"]
    assert "Received client error (400)" in error["Error"]["Message"]

    with pytest.raises(ClientError) as variant:
        runtime.invoke_endpoint(
            EndpointName=NAME, Body=json.dumps(REVIEWS), ContentType="application/json", TargetVariant="Blue"
        )
    assert "no production variant 'Blue'" in variant.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as too_large:
        runtime.invoke_endpoint(EndpointName=NAME, Body=b"x" * (SMALL_LIMIT + 1), ContentType="text/csv")
    assert too_large.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_answer(server: RunningServer) -> None:
    host = server.state.endpoints[NAME].current
    before = (host.stats.requests, host.stats.model_calls)
    texts = [f"Review number {n}: {REVIEWS[n % 3]}" for n in range(48)]
    alone = {
        text: json.loads(invoke(server, json.dumps([text]), "application/json")[2])[0] for text in texts[:6]
    }

    def one(text: str) -> tuple[str, dict]:
        status, _, body = invoke(server, json.dumps([text]), "application/json")
        assert status == 200
        return text, json.loads(body)[0]

    with ThreadPoolExecutor(16) as pool:
        answers = dict(pool.map(one, texts))
    for text, expected in alone.items():  # batched with others, a review gets the answer it gets alone
        assert answers[text]["predicted_label"] == expected["predicted_label"]
        assert answers[text]["probability"] == pytest.approx(expected["probability"], abs=1e-4)
    requests = host.stats.requests - before[0]
    calls = host.stats.model_calls - before[1]
    assert requests == 48 + 6
    assert calls < requests  # some requests shared a forward pass
    assert host.stats.largest_batch <= host.settings.max_batch_size


def test_one_bad_request_in_a_batch_does_not_fail_the_others(server: RunningServer, monkeypatch) -> None:
    host = server.state.endpoints[NAME].current
    real = host.handler.predict_fn

    def picky(reviews, model):
        if any("poison" in review for review in reviews):
            raise ValueError("poison")
        return real(reviews, model)

    monkeypatch.setattr(host.handler, "predict_fn", picky)
    texts = ["poison review"] + [f"fine review {n}" for n in range(15)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda t: invoke(server, json.dumps([t]), "application/json")[0], texts))
    assert statuses[0] == 500
    assert statuses[1:] == [200] * 15


# ------------------------------------------------------------------------------------------------- loading
def test_archives_that_cannot_serve_are_clear_errors(tmp_path: Path) -> None:
    no_handler = tmp_path / "model"
    no_handler.mkdir()
    (no_handler / "config.json").write_text("{}")
    no_handler_archive = tmp_path / "no-handler.tar.gz"
    pack_model(no_handler, no_handler_archive)
    with pytest.raises(ServingError, match=r"the model has no code/inference\.py"):
        load(no_handler_archive, tmp_path / "w1")

    escaping = tmp_path / "escaping.tar.gz"
    with tarfile.open(escaping, "w:gz") as tar:
        member = tarfile.TarInfo("../outside.txt")
        member.size = 2
        tar.addfile(member, io.BytesIO(b"hi"))
    with pytest.raises(ServingError, match="cannot unpack the model archive"):
        load(escaping, tmp_path / "w2")
    with pytest.raises(ServingError, match="does not exist"):
        load(tmp_path / "missing.tar.gz", tmp_path / "w3")
    assert not any((tmp_path / name).exists() for name in ("w1", "w2", "w3"))  # nothing left unpacked


def test_the_server_listens_on_loopback_only(model_archive: Path) -> None:
    state = adhoc_state(model_archive, NAME, 1)
    try:
        with pytest.raises(ServingError, match="loopback only"):
            start_in_thread(state, host="0.0.0.0")
    finally:
        for endpoint in state.endpoints.values():
            endpoint.current.close()


def test_a_stopped_thread_server_unloads_its_model(model_archive: Path) -> None:
    state = adhoc_state(model_archive, NAME, 1)
    running = start_in_thread(state)
    host = state.endpoints[NAME].current
    assert host.work_dir.is_dir() and host.alive()
    running.stop()
    assert not host.work_dir.exists()
    assert not host.alive() and not running.thread.is_alive()
