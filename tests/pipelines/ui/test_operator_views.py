"""What an operator and an approver see on the page: a stage serving a Rejected version is said where the
endpoint is shown, the Monitoring view (verdict history per endpoint, violations, the picture), compact lists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pipelines.local.workspace import Workspace
from tests.pipelines.ui.conftest import client_of
from tests.pipelines.ui.operator_run import FAILED_GATE, make_operator_run
from tests.pipelines.ui.test_app import text_of


@pytest.fixture
def operator_run(made_up: Workspace) -> Workspace:
    return make_operator_run(made_up)


@pytest.fixture
def client(operator_run: Workspace) -> Iterator[TestClient]:
    yield from client_of(operator_run)


def test_an_endpoint_serving_a_rejected_version_is_said(client: TestClient, operator_run: Workspace) -> None:
    prod = operator_run.config.endpoint_name("prod")
    page = client.get("/endpoints")
    assert page.status_code == 200
    assert f'id="rejected-{prod}"' in page.text
    shown = text_of(page.text)
    assert "Serves version 2, which is Rejected" in shown
    assert "promote what staging serves once it is an approved version" in shown


def test_the_monitoring_view_shows_each_verdict_the_violations_and_the_picture(
    client: TestClient, operator_run: Workspace
) -> None:
    prod = operator_run.config.endpoint_name("prod")
    page = client.get("/monitoring")
    assert page.status_code == 200
    shown = text_of(page.text)
    assert f"{prod} prod drift" in shown  # the latest verdict beside the endpoint's name
    assert "population stability index of review lengths is 0.61, above 0.25" in shown
    assert shown.index("12-01T11:00 to 12:00 2 drift 160 1") < shown.index(
        "12-01T10:00 to 11:00 2 no_drift 160 0"
    )
    picture = f"/files/monitoring/{prod}/run1/drift.png"
    assert f'src="{picture}"' in page.text
    image = client.get(picture)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert client.get("/monitoring/../endpoints/server.json").status_code == 404


def test_the_executions_list_names_the_failure_and_keeps_the_gate_on_one_line(client: TestClient) -> None:
    page = client.get("/executions")
    assert FAILED_GATE[:100] in text_of(page.text)
    assert '<td class="gate nowrap">' in page.text


def test_an_execution_shows_the_retry_policies_once_in_words(
    client: TestClient, operator_run: Workspace
) -> None:
    from pipelines.local.executions import ExecutionStore

    record = ExecutionStore(operator_run.executions_dir).load("latest")
    page = client.get(f"/executions/{record.id}")
    assert page.status_code == 200
    assert "ExceptionType" not in page.text and "retry_policies" not in page.text
    assert (
        text_of(page.text).count("Step.THROTTLING, Step.SERVICE_FAULT: up to 5 retries, first after 10 s")
        == 1
    )


def test_a_done_promote_banner_goes_once_it_no_longer_holds(
    client: TestClient, operator_run: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model_deploy.local import rollout
    from model_deploy.local.state import EndpointStore

    def roll_out(workspace: Workspace, stage: str, *args: object, **kwargs: object) -> rollout.RolloutResult:
        return rollout.RolloutResult(workspace.config.endpoint_name(stage), "Deployed", 1)

    monkeypatch.setattr(rollout, "roll_out", roll_out)
    client.post("/endpoints/promote", headers={"Origin": "http://127.0.0.1"}, follow_redirects=False)
    assert client.app.state.jobs.wait(timeout=60)
    store = EndpointStore(operator_run.endpoints_dir)
    records = store.load()
    store.save({})  # nothing serves a Rejected version: the fresh Done still describes what happened
    assert "Promote staging to prod: Done" in text_of(client.get("/endpoints").text)
    store.save(records)  # prod serves a version rejected since: the green Done is gone, the warning is there
    shown = text_of(client.get("/endpoints").text)
    assert "Promote staging to prod: Done" not in shown and "which is Rejected" in shown


def test_the_rejected_versions_page_says_it_still_serves(client: TestClient, operator_run: Workspace) -> None:
    page = client.get("/registry/2")
    assert 'id="rejected-serving"' in page.text
    shown = text_of(page.text)
    assert (
        f"This version is Rejected but still serves on {operator_run.config.endpoint_name('prod')}" in shown
    )
    assert 'id="rejected-serving"' not in client.get("/registry/1").text
