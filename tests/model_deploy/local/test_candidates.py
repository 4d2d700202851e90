"""Versions that must never disturb what serves: broken archives, handlers that exit, hang or crash the process.

A server of a run folder on a background thread, driven through its control routes as the rollout drives it
(:class:`EndpointClient`), with the tiny RoBERTa archive and handler variants appended to its own handler.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from model_deploy.local.rollout import EndpointClient, RolloutError, runtime_client
from model_deploy.local.server import RunningServer, start_in_thread, workspace_state
from model_deploy.local.state import EndpointStore, ServerInfo, now
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace
from tests.model_deploy.local.conftest import register, with_handler_source

STAGING = "review-sentiment-dev-staging"


@pytest.fixture
def served(tmp_path: Path, model_archive: Path) -> Iterator[tuple[Workspace, RunningServer, EndpointClient]]:
    workspace = Workspace.open(tmp_path / "run")
    state = workspace_state(workspace)
    state.load_timeout_seconds = 30
    running = start_in_thread(state)
    info = ServerInfo(0, running.url, state.token, now())
    client = EndpointClient(info)
    version = register(workspace, model_archive, "good")
    deploy(workspace, client, version)
    yield workspace, running, client
    running.stop()


def package(workspace: Workspace, version: int):
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        return registry.describe(workspace.config.model_package_group_name, version)


def deploy(workspace: Workspace, client: EndpointClient, version: int) -> None:
    client.load_candidate(STAGING, "staging", package(workspace, version))
    client.promote(STAGING)


def still_serving(url: str) -> None:
    answer = runtime_client(url).invoke_endpoint(
        EndpointName=STAGING, Body=json.dumps({"features": ["Still fine?"]}), ContentType="application/json"
    )
    assert len(json.loads(answer["Body"].read())) == 1


@pytest.mark.parametrize(
    ("name", "extra", "reason"),
    [
        ("exits-at-import", "\nraise SystemExit(3)\n", "SystemExit"),
        (
            "os-exit-in-model-fn",
            "\ndef model_fn(model_dir):\n    import os\n    os._exit(7)\n",
            "exit code 7",
        ),
        (
            "hangs-in-model-fn",
            "\ndef model_fn(model_dir):\n    import time\n    time.sleep(600)\n",
            "within 30 s",
        ),
    ],
)
def test_a_candidate_that_exits_crashes_or_hangs_is_refused_and_the_old_version_serves(
    served, model_archive: Path, tmp_path: Path, name: str, extra: str, reason: str, monkeypatch
) -> None:
    workspace, running, client = served
    if name == "hangs-in-model-fn":
        running.state.load_timeout_seconds = 5
        reason = "within 5 s"
    version = register(workspace, with_handler_source(model_archive, tmp_path / name, extra), name)
    with pytest.raises(RolloutError, match=reason):
        client.load_candidate(STAGING, "staging", package(workspace, version))
    described = client.describe(STAGING)
    assert described["EndpointStatus"] == "InService" and described["Version"] == 1
    assert (
        described["History"][-1]["outcome"] == "Failed"
        and reason.split()[0] in described["History"][-1]["reason"]
    )
    still_serving(running.url)
    # and the endpoint takes the next version as usual
    running.state.load_timeout_seconds = 60
    deploy(workspace, client, register(workspace, model_archive, "good-again"))
    assert client.describe(STAGING)["Version"] == version + 1


def test_a_truncated_archive_is_refused_with_its_reason(served, model_archive: Path, tmp_path: Path) -> None:
    workspace, running, client = served
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(model_archive.read_bytes()[: model_archive.stat().st_size // 2])
    version = register(workspace, truncated, "truncated")
    with pytest.raises(RolloutError, match="cannot unpack the model archive"):
        client.load_candidate(STAGING, "staging", package(workspace, version))
    still_serving(running.url)


def test_a_predict_fn_that_exits_answers_a_model_error_and_the_endpoint_keeps_serving(
    served, model_archive: Path, tmp_path: Path
) -> None:
    workspace, running, client = served
    extra = (
        "\n_real_predict_fn = predict_fn\n"
        "def predict_fn(reviews, model):\n"
        "    if any('KILLME' in review for review in reviews):\n"
        "        raise SystemExit('predict_fn exited')\n"
        "    return _real_predict_fn(reviews, model)\n"
    )
    deploy(
        workspace,
        client,
        register(workspace, with_handler_source(model_archive, tmp_path / "exits", extra), "exits"),
    )
    runtime = runtime_client(running.url)
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        runtime.invoke_endpoint(
            EndpointName=STAGING, Body='{"features": ["KILLME"]}', ContentType="application/json"
        )
    assert raised.value.response["OriginalStatusCode"] == 500
    still_serving(running.url)


def test_a_restart_restores_every_endpoint_even_when_one_archive_is_broken(
    tmp_path: Path, model_archive: Path
):
    workspace = Workspace.open(tmp_path / "run")
    first = workspace_state(workspace)
    running = start_in_thread(first)
    client = EndpointClient(ServerInfo(0, running.url, first.token, now()))
    staging_version = register(workspace, model_archive, "staging")
    prod_version = register(workspace, model_archive, "prod")
    deploy(workspace, client, staging_version)
    client.load_candidate("review-sentiment-dev-prod", "prod", package(workspace, prod_version))
    client.promote("review-sentiment-dev-prod")
    running.stop()

    broken = workspace.local_path(package(workspace, staging_version).model_data_url)
    broken.write_bytes(broken.read_bytes()[:1000])
    second = workspace_state(workspace)
    running = start_in_thread(second)
    try:
        client = EndpointClient(ServerInfo(0, running.url, second.token, now()))
        names = [e["EndpointName"] for e in client.endpoints()]
        assert names == [STAGING, "review-sentiment-dev-prod"]  # both known at once, while they load
        for _ in range(600):
            if not any(e["EndpointStatus"] == "Creating" for e in client.endpoints()):
                break
            threading_wait(0.1)
        staging, prod = client.endpoints()
        assert (
            staging["EndpointStatus"] == "Failed" and "could not be loaded again" in staging["FailureReason"]
        )
        assert prod["EndpointStatus"] == "InService" and prod["Version"] == prod_version
        # a new version still goes to the broken endpoint
        deploy(workspace, client, register(workspace, model_archive, "fixed"))
        still_serving(running.url)
        assert EndpointStore(workspace.endpoints_dir).load()[STAGING].version == prod_version + 1
    finally:
        running.stop()
    shutil.rmtree(tmp_path / "run", ignore_errors=True)


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


def test_a_deployment_asked_for_while_the_server_restores_waits_for_the_restore(
    tmp_path: Path, model_archive: Path
) -> None:
    """Approving while the server is stopped starts it, then deploys at once: the restore must finish first."""
    workspace = Workspace.open(tmp_path / "run")
    first = workspace_state(workspace)
    running = start_in_thread(first)
    client = EndpointClient(ServerInfo(0, running.url, first.token, now()))
    deploy(workspace, client, register(workspace, model_archive, "first"))
    running.stop()

    second = workspace_state(workspace)
    running = start_in_thread(second)
    try:
        client = EndpointClient(ServerInfo(0, running.url, second.token, now()))
        newer = register(workspace, model_archive, "newer")
        deploy(workspace, client, newer)  # no wait for the restore: the server waits for it itself
        described = client.describe(STAGING)
        assert described["EndpointStatus"] == "InService" and described["Version"] == newer
        assert [entry["outcome"] for entry in described["History"]] == ["Deployed", "Deployed"]
        still_serving(running.url)
    finally:
        running.stop()


def test_a_rollback_is_recorded_as_one_with_its_reason(
    served, model_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging serves version 2; version 2 is rejected, the rollout takes version 1 back: the history says
    RolledBack and why, not a plain deploy with an empty reason."""
    from model_deploy.local import rollout

    workspace, running, client = served
    newer = register(workspace, model_archive, "newer")
    deploy(workspace, client, newer)
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        group = workspace.config.model_package_group_name
        registry.update_approval(group, 1, "Approved")
        registry.update_approval(group, newer, "Rejected", "answers neutral to everything")
    info = ServerInfo(0, running.url, running.state.token, now())
    monkeypatch.setattr(rollout, "start_server", lambda workspace, out=print: info)
    # the tiny random model answers nonsense: its smoke test is not what this test is about
    passed = SimpleNamespace(passed=True, summary=lambda: "smoke test passed", failures=[])
    monkeypatch.setattr(rollout, "run_smoke_test", lambda *args, **kwargs: passed)
    said: list[str] = []
    why = f"version {newer} was Rejected: answers neutral to everything"
    result = rollout.roll_out(workspace, "staging", out=said.append, why=why)
    assert result.outcome == "Deployed" and result.version == 1, said
    assert said[-1].endswith(f"rolled back to version 1 ({why}).")
    history = EndpointStore(workspace.endpoints_dir).load()[STAGING].history
    assert [(entry.outcome, entry.version, entry.reason) for entry in history] == [
        ("Deployed", 1, ""),
        ("Deployed", newer, ""),
        ("RolledBack", 1, why),
    ]
    with pytest.raises(RolloutError, match="outcome must be Deployed or RolledBack"):
        client.load_candidate(STAGING, "staging", package(workspace, newer))
        client.promote(STAGING, "Whatever")
