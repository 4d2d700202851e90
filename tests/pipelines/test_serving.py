"""The local endpoint: a model.tar.gz served over HTTP under the SageMaker hosting contract.

One archive per module (the tiny RoBERTa with the label map training writes, and the repository's handler in
``code/``), one server per module on a free port of 127.0.0.1; every request goes over a real socket.
"""

from __future__ import annotations

import http.client
import io
import json
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_build.pipeline_spec import SERVING_SOURCE_DIR
from pipelines import cli
from pipelines.local.container import pack_model
from pipelines.local.registry import Lineage, ModelRegistry
from pipelines.local.serving import ServerHandle, ServingError, serve
from pipelines.local.workspace import Workspace
from tests.model_build.review_splits import labelled_model

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL_LIMIT = 64 * 1024
"""The server under test refuses bodies over this, so a 413 needs no 6 MB upload."""
REVIEWS = [
    "I love this dress, it fits perfectly and the fabric is soft.",
    "Terrible quality, it ripped after one wash. Returning it.",
    "It's okay, nothing special, the color is a bit off.",
]
PREDICTION_FIELDS = {"predicted_label", "sentiment", "probability", "probabilities"}


@pytest.fixture(scope="module")
def model_archive(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    """A model.tar.gz laid out as training packs it: the model at the top level, the handler in code/."""
    model_dir = labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"), max_seq_length=32)
    (model_dir / "code").mkdir()
    shutil.copy2(REPO_ROOT / SERVING_SOURCE_DIR / "inference.py", model_dir / "code" / "inference.py")
    archive = tmp_path_factory.mktemp("archive") / "model.tar.gz"
    pack_model(model_dir, archive)
    return archive


@pytest.fixture(scope="module")
def server(model_archive: Path) -> Iterator[ServerHandle]:
    with serve(model_archive, "127.0.0.1", 0, max_body_bytes=SMALL_LIMIT) as handle:
        yield handle


def request(
    server: ServerHandle, method: str, path: str, body: str | bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers, body). Header names: ``Content_Type`` etc."""
    host, port = server.server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, body, {name.replace("_", "-"): v for name, v in headers.items()})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def invoke(server: ServerHandle, body: str | bytes, content_type: str, accept: str = "application/json"):
    return request(server, "POST", "/invocations", body, Content_Type=content_type, Accept=accept)


def assert_predictions(predictions: list[dict], count: int) -> None:
    assert len(predictions) == count
    for prediction in predictions:
        assert set(prediction) == PREDICTION_FIELDS
        assert prediction["predicted_label"] in (-1, 0, 1)
        assert set(prediction["probabilities"]) == {"negative", "neutral", "positive"}
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["probability"] == max(prediction["probabilities"].values())


def test_ping_answers_once_loaded_and_the_handler_is_the_models_own(server: ServerHandle) -> None:
    status, _, body = request(server, "GET", "/ping")
    assert (status, body) == (200, b"")
    handler_file = Path(server.endpoint.handler.__file__)
    assert handler_file == server.endpoint.model_dir / "code" / "inference.py"  # unpacked, not the repo's


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
    server: ServerHandle, body: str, content_type: str
) -> None:
    status, headers, response = invoke(server, body, content_type)
    assert status == 200, response
    assert headers["Content-Type"] == "application/json"
    assert_predictions(json.loads(response), len(REVIEWS))


def test_accept_json_lines_answers_one_line_per_review(server: ServerHandle) -> None:
    status, headers, response = invoke(server, "\n".join(REVIEWS), "text/csv", "application/jsonlines")
    assert status == 200
    assert headers["Content-Type"] == "application/jsonlines"
    lines = response.decode().splitlines()
    assert_predictions([json.loads(line) for line in lines], len(REVIEWS))
    same_as_json = json.loads(invoke(server, json.dumps(REVIEWS), "application/json")[2])
    assert [json.loads(line)["predicted_label"] for line in lines] == [
        p["predicted_label"] for p in same_as_json
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        ("", "application/json", "application/json", 400, "the request body is empty"),
        ('{"features": [', "application/json", "application/json", 400, "the body is not valid JSON"),
        ('{"features": ["ok", 3]}', "application/json", "application/json", 400, "features[1] is a int"),
        ("a review", "text/plain", "application/json", 415, "unsupported content type 'text/plain'"),
        ('["a review"]', "application/json", "text/csv", 406, "cannot answer in 'text/csv'"),
        (json.dumps(["a review"] * 65), "application/json", "application/json", 413, "65 reviews"),
    ],
    ids=["empty", "invalid-json", "not-a-string", "content-type", "accept", "too-many-reviews"],
)
def test_bad_requests_get_the_handlers_status_and_message_and_the_server_keeps_serving(
    server: ServerHandle, body: str, content_type: str, accept: str, status: int, message: str
) -> None:
    answer, headers, response = invoke(server, body, content_type, accept)
    assert answer == status
    assert headers["Content-Type"] == "application/json"
    assert message in json.loads(response)["error"]
    assert invoke(server, json.dumps(REVIEWS[:1]), "application/json")[0] == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: ServerHandle) -> None:
    host, port = server.server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
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
    # curl's way for large bodies: Expect: 100-continue gets the 413 instead of the go-ahead.
    status, _, response = request(
        server,
        "POST",
        "/invocations",
        None,
        Content_Type="application/json",
        Content_Length=str(SMALL_LIMIT + 1),
        Expect="100-continue",
    )
    assert status == 413 and b"SageMaker" in response
    assert invoke(server, json.dumps(REVIEWS[:1]), "application/json")[0] == 200


def test_unknown_paths_are_404(server: ServerHandle) -> None:
    for method, path in [("GET", "/"), ("GET", "/invocations"), ("POST", "/ping"), ("POST", "/predict")]:
        status, _, response = request(server, method, path, b"{}" if method == "POST" else None)
        assert status == 404, (method, path)
        assert "/invocations" in json.loads(response)["error"]


def test_a_failing_handler_is_a_500_with_its_message_and_the_server_keeps_serving(
    server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(reviews, model):
        raise RuntimeError("CUDA out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(server.endpoint.handler, "predict_fn", broken)
        status, _, response = invoke(server, json.dumps(REVIEWS), "application/json")
    assert status == 500
    assert json.loads(response) == {"error": "RuntimeError: CUDA out of memory"}
    assert invoke(server, json.dumps(REVIEWS), "application/json")[0] == 200


def test_archives_that_cannot_serve_are_clear_errors(tmp_path: Path) -> None:
    no_handler = tmp_path / "model"
    no_handler.mkdir()
    (no_handler / "config.json").write_text("{}")
    no_handler_archive = tmp_path / "no-handler.tar.gz"
    pack_model(no_handler, no_handler_archive)
    with pytest.raises(ServingError, match=r"the model has no code/inference\.py"), serve(no_handler_archive):
        pass

    escaping = tmp_path / "escaping.tar.gz"
    with tarfile.open(escaping, "w:gz") as tar:
        member = tarfile.TarInfo("../outside.txt")
        member.size = 2
        tar.addfile(member, io.BytesIO(b"hi"))
    with pytest.raises(ServingError, match="cannot unpack the model archive"), serve(escaping):
        pass

    with pytest.raises(ServingError, match="does not exist"), serve(tmp_path / "missing.tar.gz"):
        pass


# ------------------------------------------------------------------------------------------------- the CLI
def test_serve_an_unknown_version_exits_with_the_registrys_error(tmp_path: Path, capsys) -> None:
    assert cli.main(["serve", "7", "--run-dir", str(tmp_path)]) == 2
    assert "has no version 7: it has no versions yet" in capsys.readouterr().err


def test_serve_a_registered_version_prints_how_to_call_it_and_stops_on_ctrl_c(
    tmp_path: Path, model_archive: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = Workspace.open(tmp_path)
    uri = f"s3://{workspace.artifacts_bucket}/models/model.tar.gz"
    workspace.local_path(uri).parent.mkdir(parents=True)
    shutil.copy2(model_archive, workspace.local_path(uri))
    lineage = Lineage("e", "arn:e", {}, "data/reviews_sample.csv", "0" * 64, "1" * 64, None)
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        registry.register(
            workspace.config.model_package_group_name,
            uri,
            lineage,
            content_types=["application/json"],
            response_types=["application/json"],
            inference_instance_types=["ml.m5.large"],
            metrics={},
        )

    def ctrl_c(self: ServerHandle) -> None:
        """Serve one ping on a side thread, then stop as Ctrl-C stops the blocking call."""
        thread = threading.Thread(target=self.server.serve_forever)
        thread.start()
        try:
            assert request(self, "GET", "/ping")[0] == 200
        finally:
            self.server.shutdown()
            thread.join()
        raise KeyboardInterrupt

    monkeypatch.setattr(ServerHandle, "serve_forever", ctrl_c)
    assert cli.main(["serve", "1", "--port", "0", "--run-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "version 1 (PendingManualApproval)" in out
    assert "Serving at http://127.0.0.1:" in out and ":0" not in out.split("Serving at ")[1].split()[0]
    assert "/invocations -H 'Content-Type: application/json' -d '{\"features\": [" in out
    assert "Stopped." in out
