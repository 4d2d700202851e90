"""The page's routes through Starlette's TestClient: what each view shows, and what a POST may change."""

from __future__ import annotations

import html
import re
import threading
import time
from pathlib import Path

import pytest

from model_build.pipeline_spec import PIPELINE
from model_deploy.local.state import Deployment, EndpointRecord, EndpointStore
from pipelines.local.events import SubscriberError, read_events
from pipelines.local.executions import ExecutionRecord, ExecutionStore, Status, StepRecord
from pipelines.local.query_limits import QueryLimits
from pipelines.local.registry import ApprovalStatus, ModelRegistry
from pipelines.local.workspace import Workspace
from pipelines.ui.graph import build_graph
from tests.pipelines.ui.conftest import BASE_URL, SAME_ORIGIN, client_of

GROUP = "review-sentiment-dev-models"


def text_of(page: str) -> str:
    """The page's visible text, tags removed and whitespace folded: what a reader sees."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def status_of(workspace: Workspace, version: int) -> ApprovalStatus:
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        return registry.describe(workspace.config.model_package_group_name, version).approval_status


# ------------------------------------------------------------------------------------------------- empty, missing
def test_an_empty_run_folder_says_how_to_fill_it(tmp_path):
    client = next(client_of(Workspace.open(tmp_path / "empty")))
    page = client.get("/executions")
    assert page.status_code == 200
    assert "No executions in" in text_of(page.text) and "python -m pipelines run --local" in page.text
    assert "No versions in" in text_of(client.get("/registry").text)
    assert "No endpoints yet" in text_of(client.get("/endpoints").text)
    features = client.get("/features")
    assert features.status_code == 200 and "0 rows" in text_of(features.text)
    assert client.get("/", follow_redirects=False).headers["location"] == "/executions"


def test_a_missing_execution_or_version_is_a_clear_404(made_up_client):
    missing = made_up_client.get("/executions/20990101")
    assert missing.status_code == 404
    assert "no single execution '20990101'" in text_of(missing.text)
    version = made_up_client.get("/registry/7")
    assert version.status_code == 404 and "has no version 7: its versions are 1 to 2" in text_of(version.text)
    assert made_up_client.get("/registry/seven").status_code == 404
    lineage = made_up_client.get("/registry/1")
    assert lineage.status_code == 200 and "no longer in this run folder" in text_of(lineage.text)


# ------------------------------------------------------------------------------------------------- executions
def test_an_execution_shows_the_graph_of_the_shared_description_with_logs_and_pictures(
    run_client, pipeline_run
):
    record = ExecutionStore(pipeline_run.executions_dir).load("latest")
    listing = run_client.get("/executions")
    assert f'href="/executions/{record.id}"' in listing.text and "Succeeded" in listing.text

    page = run_client.get(f"/executions/{record.id}")
    assert page.status_code == 200
    drawn = dict(re.findall(r'data-step="([^"]+)" data-status="([^"]+)"', page.text))
    assert list(drawn) == list(PIPELINE.step_names)
    assert drawn.pop("FailQualityGate") == "Skipped"  # the gate was opened: the other branch ran
    assert set(drawn.values()) == {"Succeeded"}
    assert "if true" in page.text and "if false" in page.text
    assert 'href="/registry/1"' in page.text
    # The execution's MLflow run (MLflow's UI, `pipelines experiments`), and training's diagnostics.
    run_id = record.parameters["MlflowRunId"]
    assert f'id="mlflow-run">{run_id}</a>' in page.text and f"/#/runs/{run_id}" in page.text
    fired = record.step("TrainModel").detail.get("diagnostics", [])
    if fired:
        assert all(html.escape(verdict["message"], quote=False) in page.text for verdict in fired)
    else:
        assert "Training diagnostics: no rule fired" in page.text

    train = record.step("TrainModel")
    assert train.log is not None
    last_line = Path(train.log).read_text().rstrip().splitlines()[-1].rsplit("\r", 1)[-1].strip()
    assert html.escape(last_line, quote=False) in page.text
    whole = run_client.get(f"/executions/{record.id}/logs/TrainModel")
    assert whole.status_code == 200 and whole.text == Path(train.log).read_text()
    assert run_client.get(f"/executions/{record.id}/logs/NoSuchStep").status_code == 404

    evaluation = re.findall(r'<a href="(/files/[^"]+/EvaluateModel/evaluation/evaluation.json)"', page.text)
    assert len(evaluation) == 1  # each output's files are listed, linked
    report = pipeline_run.local_path(record.step("EvaluateModel").outputs["evaluation"]) / "evaluation.json"
    assert run_client.get(evaluation[0]).text == report.read_text()

    pictures = re.findall(r'<img src="([^"]+)"', page.text)
    assert {Path(url).name for url in pictures} == {
        "data_check.png",
        "confusion_matrix.png",
        "training_curves.png",
    }
    for url in pictures:
        picture = run_client.get(url)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert picture.content.startswith(b"\x89PNG")


def test_the_graph_of_an_execution_in_progress():
    running = ExecutionRecord(
        "x",
        "p",
        {},
        steps=[StepRecord("CheckData", "Processing"), StepRecord("ProcessReviews", "Processing")],
    )
    for done in running.steps:
        done.finish(Status.SUCCEEDED)
    running.steps.append(StepRecord("TrainModel", "Training"))
    graph = build_graph(PIPELINE, running)
    statuses = {node.name: node.status for node in graph.nodes}
    assert statuses == {
        "CheckData": "Succeeded",
        "ProcessReviews": "Succeeded",
        "TrainModel": "Executing",
        "EvaluateModel": "NotStarted",
        "CheckModelQuality": "NotStarted",
        "RegisterModel": "NotStarted",
        "FailQualityGate": "NotStarted",
    }
    # The order, not every data flow: RegisterModel also reads TrainModel's model, drawn through the condition.
    assert [(edge.source, edge.target, edge.label) for edge in graph.edges] == [
        ("CheckData", "ProcessReviews", ""),
        ("ProcessReviews", "TrainModel", ""),
        ("TrainModel", "EvaluateModel", ""),
        ("EvaluateModel", "CheckModelQuality", ""),
        ("CheckModelQuality", "RegisterModel", "if true"),
        ("CheckModelQuality", "FailQualityGate", "if false"),
    ]
    assert len({(node.x, node.y) for node in graph.nodes}) == len(graph.nodes), (
        "two steps drawn on each other"
    )


def test_a_page_of_a_run_in_progress_updates_itself_until_the_run_ends(made_up_client, made_up):
    store = ExecutionStore(made_up.executions_dir)
    record = store.create("review-sentiment-dev-build", {"Epochs": 1})  # this process's pid: alive
    page = made_up_client.get(f"/executions/{record.id}")
    assert 'data-live="200"' in page.text and 'http-equiv="refresh"' in page.text
    assert 'data-live="200"' in made_up_client.get("/executions").text
    record.status, record.ended = Status.SUCCEEDED, record.created
    store.save(record)
    assert "data-live" not in made_up_client.get(f"/executions/{record.id}").text
    assert "data-live" not in made_up_client.get("/executions").text


# ------------------------------------------------------------------------------------------------- registry
def test_a_version_shows_its_metrics_baselines_pictures_and_evaluation(run_client, pipeline_run):
    with ModelRegistry(pipeline_run.registry_path, pipeline_run.config.region) as registry:
        package = registry.describe(GROUP, 1)
    listing = text_of(run_client.get("/registry").text)
    assert f"version 1 {package.approval_status}" in listing
    assert f"{package.metric('accuracy'):.4f}" in listing

    page = run_client.get("/registry/1")
    assert page.status_code == 200
    shown = text_of(page.text)
    for name, value in package.scalar_metrics().items():
        assert f"{name} {value:.4f}" in shown
    assert "majority_class" in shown and "tfidf_logistic_regression" in shown
    assert f'href="/executions/{package.lineage.execution_id}"' in page.text
    assert package.lineage.input_data_sha256 in shown
    assert f"/#/runs/{package.lineage.mlflow_run_id}" in page.text  # the version links to its MLflow run
    report = pipeline_run.local_path(package.metrics_report_uri or "")
    assert report.read_text() in html.unescape(page.text)
    pictures = re.findall(r'<img src="([^"]+)"', page.text)
    assert {Path(url).name for url in pictures} == {
        "data_check.png",
        "confusion_matrix.png",
        "training_curves.png",
    }
    assert all(run_client.get(url).status_code == 200 for url in pictures)


def test_approve_and_reject_go_through_the_registry_and_emit_its_events(made_up_client, made_up):
    delivered: list[dict] = []
    made_up_client.app.state.event_subscribers = [lambda event, workspace: delivered.append(event)]
    try:
        answer = made_up_client.post(
            "/registry/1/approval",
            data={"action": "approve", "note": "checked the confusion matrix"},
            headers=SAME_ORIGIN,
            follow_redirects=False,
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/registry/1"
        assert made_up_client.app.state.jobs.wait(timeout=60)
        page = text_of(made_up_client.get("/registry/1").text)
        assert "version 1 Approved" in page and "checked the confusion matrix" in page
        assert "Approve version 1: Done" in page
    finally:
        made_up_client.app.state.event_subscribers = []
    assert status_of(made_up, 1) == ApprovalStatus.APPROVED
    assert [event["detail"]["ModelApprovalStatus"] for event in delivered] == ["Approved"]
    recorded = read_events(made_up.events_dir)
    assert recorded[-1]["detail"]["ModelPackageVersion"] == 1
    assert recorded[-1]["detail"]["ApprovalDescription"] == "checked the confusion matrix"

    again = made_up_client.post("/registry/1/approval", data={"action": "approve"}, headers=SAME_ORIGIN)
    assert again.status_code == 409 and "is already Approved" in text_of(again.text)
    rejected = made_up_client.post("/registry/1/approval", data={"action": "reject"}, headers=SAME_ORIGIN)
    assert rejected.status_code == 200 and status_of(made_up, 1) == ApprovalStatus.REJECTED
    assert made_up_client.app.state.jobs.wait(
        timeout=60
    )  # until then, another click is told the job still runs
    back = made_up_client.post("/registry/1/approval", data={"action": "approve"}, headers=SAME_ORIGIN)
    assert back.status_code == 409 and "it cannot become Approved. Register a new version" in text_of(
        back.text
    )
    bad = made_up_client.post("/registry/2/approval", data={"action": "promote"}, headers=SAME_ORIGIN)
    assert bad.status_code == 400 and status_of(made_up, 2) == ApprovalStatus.PENDING


def test_a_long_rollout_does_not_hold_the_page_and_its_failure_is_shown(made_up_client, made_up):
    release = threading.Event()

    def slow_rollout(event: dict, workspace: Workspace) -> None:
        assert release.wait(60)
        raise SubscriberError("version 2 was not deployed to review-sentiment-dev-staging: smoke test failed")

    made_up_client.app.state.event_subscribers = [slow_rollout]
    try:
        started = time.monotonic()
        answer = made_up_client.post(
            "/registry/2/approval", data={"action": "approve"}, headers=SAME_ORIGIN, follow_redirects=False
        )
        assert answer.status_code == 303 and time.monotonic() - started < 30
        running = made_up_client.get("/registry/2").text
        assert "Approve version 2: Running" in text_of(running) and "data-live" in running
        # the change is in; its event is being delivered, and a second click is told so
        assert status_of(made_up, 2) == ApprovalStatus.APPROVED
        twice = made_up_client.post("/registry/2/approval", data={"action": "reject"}, headers=SAME_ORIGIN)
        assert twice.status_code == 409 and "Approve version 2 is still running" in text_of(twice.text)
        release.set()
        assert made_up_client.app.state.jobs.wait(timeout=60)
    finally:
        release.set()
    done = made_up_client.get("/registry/2").text
    assert "Approve version 2: Failed" in text_of(done) and "smoke test failed" in done
    assert "data-live" not in done


def test_cross_site_requests_change_nothing(made_up_client, made_up):
    for headers in (
        {},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/"},
    ):
        refused = made_up_client.post("/registry/1/approval", data={"action": "approve"}, headers=headers)
        assert refused.status_code == 403, headers
        assert "cross-site request" in refused.text
    assert (
        made_up_client.post("/endpoints/promote", headers={"Origin": "http://127.0.0.1:1"}).status_code == 403
    )
    assert status_of(made_up, 1) == ApprovalStatus.PENDING
    # DNS rebinding: a page at evil.example that resolves to 127.0.0.1 sends Host: evil.example.
    rebound = made_up_client.get("/registry", headers={"Host": "evil.example"})
    assert rebound.status_code == 400
    from_page = made_up_client.post(
        "/registry/1/approval",
        data={"action": "reject"},
        headers={"Referer": f"{BASE_URL}/registry/1"},
        follow_redirects=False,
    )
    assert from_page.status_code == 303  # a browser that sends only the Referer, from this page
    as_json = made_up_client.post("/registry/2/approval", json={"action": "approve"}, headers=SAME_ORIGIN)
    assert as_json.status_code == 415


def test_files_are_served_from_the_outputs_only(made_up_client, made_up):
    made_up.endpoints_dir.mkdir(parents=True)
    (made_up.endpoints_dir / "server.json").write_text('{"token": "secret"}')
    output = made_up.local_path(f"s3://{made_up.artifacts_bucket}/out/report.json")
    output.parent.mkdir(parents=True)
    output.write_text('{"a": 1}')
    assert made_up_client.get(f"/files/s3/{made_up.artifacts_bucket}/out/report.json").text == '{"a": 1}'
    for path in (
        "endpoints/server.json",
        "registry.db",
        "s3/../endpoints/server.json",
        "s3/%2e%2e/registry.db",
    ):
        assert made_up_client.get(f"/files/{path}").status_code == 404, path


# ------------------------------------------------------------------------------------------------- endpoints
def test_endpoints_show_what_they_serve_and_their_history_when_the_server_is_stopped(made_up_client, made_up):
    name = made_up.config.endpoint_name("staging")
    arn = f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/1"
    EndpointStore(made_up.endpoints_dir).save(
        {
            name: EndpointRecord(
                name,
                "staging",
                1,
                arn,
                "s3://b/m.tar.gz",
                [
                    Deployment("2026-12-01T10:00:00Z", 1, arn, "Deployed"),
                    Deployment(
                        "2026-12-01T11:00:00Z", 2, arn[:-1] + "2", "Failed", "smoke test: 2 of 3 failed"
                    ),
                ],
            )
        }
    )
    page = made_up_client.get("/endpoints")
    shown = text_of(page.text)
    assert f"{name} staging OutOfService" in shown and "Serves version 1" in shown
    assert "2026-12-01T11:00:00Z Failed 2 smoke test: 2 of 3 failed" in shown
    assert "The endpoint server is stopped" in shown
    assert f"Serving on: {name}" in text_of(made_up_client.get("/registry/1").text)
    asked = made_up_client.post(
        f"/endpoints/{name}/predict", data={"text": "Lovely dress"}, headers=SAME_ORIGIN
    )
    assert asked.status_code == 502 and "no endpoint server runs" in text_of(asked.text)
    empty = made_up_client.post(f"/endpoints/{name}/predict", data={"text": "  "}, headers=SAME_ORIGIN)
    assert empty.status_code == 400 and "Type a review to send." in empty.text


# ------------------------------------------------------------------------------------------------- features
def test_the_sql_box_reads_the_feature_views_with_a_row_limit_and_only_reads(run_client, pipeline_run):
    default = text_of(run_client.get("/features").text)
    assert "sentiment reviews -1" in default
    limited = run_client.get(
        "/features", params={"sql": "SELECT review_id FROM reviews_history", "limit": "5"}
    )
    assert limited.status_code == 200
    assert limited.text.count("<tr>") == 1 + 5 and "5 rows; more rows match" in text_of(limited.text)
    for sql, said in [
        (
            f"COPY (SELECT 1) TO '{pipeline_run.root}/x.csv'",
            "only one SELECT statement is allowed here; this is COPY",
        ),
        ("SELECT 1; DROP VIEW reviews", "this is SELECT, DROP"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
        ("SET enable_external_access = true", "this is SET"),
        ("SELEC 1", "syntax error"),
    ]:
        refused = run_client.get("/features", params={"sql": sql})
        assert refused.status_code == 400 and said in html.unescape(refused.text), sql
    assert not (pipeline_run.root / "x.csv").exists()
    assert run_client.get("/features", params={"limit": "0"}).status_code == 400
    assert run_client.get("/features", params={"limit": "many"}).status_code == 400


FOREVER_SQL = "SELECT sum(hash(range)) FROM range(1000000000000000)"
"""A query that streams (no memory to speak of) for days: only the time limit ends it."""


def test_a_query_past_the_time_limit_is_stopped_and_the_box_still_works(made_up_client, monkeypatch):
    monkeypatch.setattr("pipelines.ui.features.SQL_LIMITS", QueryLimits(seconds=1.0))
    started = time.monotonic()
    stopped = made_up_client.get("/features", params={"sql": FOREVER_SQL})
    assert time.monotonic() - started < 60, "the time limit did not stop the query"
    assert stopped.status_code == 400
    assert "the query ran past 1 s and was stopped; add a WHERE or LIMIT" in text_of(stopped.text)
    assert "Each query may run 1 s" in text_of(stopped.text)
    assert made_up_client.app.state.queries.running() == 0
    after = made_up_client.get("/features", params={"sql": "SELECT 42 AS answer"})
    assert after.status_code == 200 and "answer 42 1 row" in text_of(after.text)


def test_a_query_past_the_memory_limit_is_stopped_with_a_clear_message(made_up_client, monkeypatch):
    monkeypatch.setattr("pipelines.ui.features.SQL_LIMITS", QueryLimits(memory="64MB"))
    heavy = made_up_client.get("/features", params={"sql": "SELECT list(range) FROM range(100000000)"})
    assert heavy.status_code == 400
    assert "the query needed more than 64MB of memory and was stopped" in text_of(heavy.text)
    after = made_up_client.get("/features", params={"sql": "SELECT count(*) AS n FROM range(1000)"})
    assert after.status_code == 200 and "n 1000 1 row" in text_of(after.text)


def test_stopping_the_server_stops_its_running_query_rather_than_waiting(made_up, monkeypatch):
    """What Ctrl-C does (uvicorn's ``should_exit``): the query is interrupted at once, its request answered,
    and the server ends, though the query's own limit is far off."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from model_deploy.local.server import bind, url_of
    from pipelines.ui.server import HOST, page_server

    monkeypatch.setattr("pipelines.ui.features.SQL_LIMITS", QueryLimits(seconds=600.0))
    sock = bind(HOST, 0)
    url = url_of(sock)
    ready = threading.Event()
    server = page_server(made_up, on_ready=ready.set)
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    answers: list[str] = []

    def ask() -> None:
        query = urllib.parse.urlencode({"sql": FOREVER_SQL})
        try:
            urllib.request.urlopen(f"{url}/features?{query}", timeout=120)
        except urllib.error.HTTPError as error:
            answers.append(error.read().decode())

    try:
        assert ready.wait(timeout=60), "the page did not start"
        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        queries = server.config.app.state.queries
        deadline = time.monotonic() + 60
        while queries.running() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queries.running() == 1, "the query did not start"
        started = time.monotonic()
        server.should_exit = True
        serving.join(timeout=60)
        asking.join(timeout=60)
        assert not serving.is_alive() and time.monotonic() - started < 60
    finally:
        server.should_exit = True
        server.config.app.state.queries.stop_all()
        serving.join(timeout=60)
        sock.close()
    assert answers and "the query was stopped: the page's server is stopping" in text_of(answers[0])


@pytest.mark.parametrize("path", ["/executions", "/registry", "/endpoints", "/features"])
def test_every_view_is_self_contained(made_up_client, path):
    """Nothing is fetched from elsewhere at run time: every script, style and picture is this server's."""
    page = made_up_client.get(path).text
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page)
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
        assert made_up_client.get(asset).status_code == 200, asset


# ------------------------------------------------------------------------------------------------- rollout
def test_an_approval_starts_the_local_rollout_and_promote_rolls_to_prod(made_up_client, made_up, monkeypatch):
    """The approval's event reaches the template's own subscriber, the local rollout, as ``registry approve``'s
    does; what the rollout then does is tested with the endpoints (``tests/model_deploy/local``)."""
    from model_deploy.local import rollout

    rolled: list[tuple[Path, str]] = []

    def roll_out(workspace: Workspace, stage: str, *args: object, **kwargs: object) -> rollout.RolloutResult:
        rolled.append((workspace.root, stage))
        return rollout.RolloutResult(workspace.config.endpoint_name(stage), "Deployed", 1)

    monkeypatch.setenv(rollout.ROLLOUT_ENV, "on")
    monkeypatch.setattr(rollout, "roll_out", roll_out)
    made_up_client.post("/registry/1/approval", data={"action": "approve"}, headers=SAME_ORIGIN)
    assert made_up_client.app.state.jobs.wait(timeout=60)
    assert rolled == [(made_up.root, "staging")]
    assert "Approve version 1: Done" in text_of(made_up_client.get("/registry/1").text)

    promoted = made_up_client.post("/endpoints/promote", headers=SAME_ORIGIN, follow_redirects=False)
    assert promoted.status_code == 303 and promoted.headers["location"] == "/endpoints"
    assert made_up_client.app.state.jobs.wait(timeout=60)
    assert rolled[-1] == (made_up.root, "prod")
    assert "Promote staging to prod: Done" in text_of(made_up_client.get("/endpoints").text)


def test_a_review_sent_to_an_endpoint_shows_each_answer(made_up_client, made_up, monkeypatch):
    from model_deploy.local import rollout

    asked: list[tuple[str, list[str]]] = []

    def invoke_reviews(workspace: Workspace, name: str, texts: list[str]) -> tuple[list[dict], str]:
        asked.append((name, texts))
        return [
            {"sentiment": "positive", "probability": 0.93},
            {"sentiment": "negative", "probability": 0.81},
        ], ("AllTraffic")

    monkeypatch.setattr(rollout, "invoke_reviews", invoke_reviews)
    name = made_up.config.endpoint_name("prod")
    EndpointStore(made_up.endpoints_dir).save({name: EndpointRecord(name, "prod", 1)})
    answer = made_up_client.post(
        f"/endpoints/{name}/predict", data={"text": "Lovely dress\n\nAwful fabric\n"}, headers=SAME_ORIGIN
    )
    assert answer.status_code == 200
    assert asked == [(name, ["Lovely dress", "Awful fabric"])]
    shown = text_of(answer.text)
    assert "Lovely dress positive 0.93" in shown and "Awful fabric negative 0.81" in shown
    assert "Answered by version 1 (variant AllTraffic)" in shown


def test_ui_command_says_when_its_port_is_taken(made_up):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "pipelines", "ui", "--port", str(port), "--run-dir", str(made_up.root)],
            cwd=Path(__file__).resolve().parents[3],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
