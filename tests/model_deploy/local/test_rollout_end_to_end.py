"""The approver's path through the CLI, as a user takes it: run -> approve -> staging -> promote -> prod.

One real local run (the ``make run`` settings, so the model knows a glowing review from a furious one), then
every command as a subprocess, the endpoint server in the background, and boto3's ``sagemaker-runtime`` client
as application code would call the endpoints. A second version that answers wrongly fails its smoke test and
never takes traffic; one that cannot load neither; requests sent while a third version swaps in all succeed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from model_deploy.local.rollout import EndpointClient, runtime_client
from model_deploy.local.state import EndpointStore, ServerInfo
from pipelines.local.events import read_events
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace
from tests.model_deploy.local.conftest import register, with_handler_source

REPO_ROOT = Path(__file__).resolve().parents[3]
FLIP_SENTIMENTS = '''

_trained_predict_fn = predict_fn


def predict_fn(reviews, model):
    """A regression the smoke test must catch: positive and negative swapped."""
    flipped = {"positive": ("negative", -1), "negative": ("positive", 1)}
    results = []
    for result in _trained_predict_fn(reviews, model):
        name, label = flipped.get(result["sentiment"], (result["sentiment"], result["predicted_label"]))
        results.append({**result, "sentiment": name, "predicted_label": label})
    return results
'''
BROKEN_MODEL_FN = """

def model_fn(model_dir):
    raise RuntimeError("weights file truncated")
"""


GATE = [f"--param={p}" for p in ("MinAccuracy=0.6", "MinF1Macro=0.6", "MinBaselineMargin=-1")]
"""The gate this file needs: a model that passes the smoke test (a glowing review from a furious one), not one
that beats TF-IDF on the sample's 39 test reviews, which is the quality gate's business (its own tests)."""


def cli(run_dir: Path, tmp: Path, *arguments: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MLOPS_LOCAL_ROLLOUT": "on",
        "MLOPS_ENDPOINTS_PORT": "0",
        "TMPDIR": str(tmp),  # where the endpoint server unpacks models: the test checks it is left empty
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *arguments, "--run-dir", str(run_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def invoke(url: str, endpoint: str, reviews: list[str]) -> tuple[list[dict], str]:
    answer = runtime_client(url).invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps({"features": reviews}), ContentType="application/json"
    )
    return json.loads(answer["Body"].read()), answer["InvokedProductionVariant"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("run")
    tmp = tmp_path_factory.mktemp("server-tmp")
    ok(cli(run_dir, tmp, "run", "--local", *GATE))
    workspace = Workspace.open(run_dir)
    yield run_dir, tmp, workspace
    cli(run_dir, tmp, "endpoints", "stop")


def test_approval_rolls_out_to_staging_then_promotion_to_prod(setup) -> None:
    run_dir, tmp, workspace = setup
    config = workspace.config
    staging, prod = config.endpoint_name("staging"), config.endpoint_name("prod")

    out = ok(cli(run_dir, tmp, "registry", "approve", "1", "--note", "looks good"))
    assert "smoke test of" in out and "passed" in out
    assert f"{staging}: " in out and "version 1 now takes the traffic" in out
    info = ServerInfo.read(workspace.endpoints_dir)
    assert info is not None and info.url.startswith("http://127.0.0.1:")

    listing = ok(cli(run_dir, tmp, "endpoints"))
    assert f"{staging}  InService  1" in listing and f"{info.url}/endpoints/{staging}" in listing
    results, variant = invoke(info.url, staging, ["I love this dress, it is perfect!"])
    assert variant == "AllTraffic" and results[0]["sentiment"] in ("positive", "neutral", "negative")

    # prod waits for the manual gate
    with pytest.raises(ClientError, match=r"ValidationError.*not found"):
        invoke(info.url, prod, ["anything"])
    out = ok(cli(run_dir, tmp, "endpoints", "promote"))
    assert f"{prod}: " in out and "version 1 now takes the traffic" in out
    assert len(invoke(info.url, prod, ["Great fit", "Awful fabric"])[0]) == 2
    assert "already serves version 1" in ok(cli(run_dir, tmp, "endpoints", "promote"))
    assert "answered by" in ok(cli(run_dir, tmp, "predict", "Lovely and soft", "--endpoint", "prod"))

    # captured as SageMaker captures: JSON lines under <endpoint>/<variant>/yyyy/mm/dd/hh/
    captures = list(workspace.data_capture_root("staging").glob(f"{staging}/AllTraffic/*/*/*/*/*.jsonl"))
    records = [json.loads(line) for path in captures for line in path.read_text().splitlines()]
    assert any("I love this dress" in r["captureData"]["endpointInput"]["data"] for r in records)
    assert all(r["captureData"]["endpointInput"]["encoding"] in ("JSON", "CSV") for r in records)
    assert {r["eventMetadata"]["modelVersion"] for r in records} == {1}  # the version that answered


def test_a_version_that_fails_its_smoke_test_or_its_load_never_takes_traffic(setup, tmp_path: Path) -> None:
    run_dir, tmp, workspace = setup
    staging = workspace.config.endpoint_name("staging")
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        good = workspace.local_path(
            registry.describe(workspace.config.model_package_group_name, 1).model_data_url
        )

    flipped = register(workspace, with_handler_source(good, tmp_path / "flipped", FLIP_SENTIMENTS), "flipped")
    refused = cli(run_dir, tmp, "registry", "approve", str(flipped))
    assert refused.returncode == 1  # approved, but not deployed: the approver's command says so
    assert (
        "FAILED" in refused.stdout
        and f"version {flipped} was not deployed; version 1 keeps serving" in refused.stdout
    )
    assert f"version {flipped} was not deployed to {staging}" in refused.stderr
    broken = register(workspace, with_handler_source(good, tmp_path / "broken", BROKEN_MODEL_FN), "broken")
    refused = cli(run_dir, tmp, "registry", "approve", str(broken))
    assert refused.returncode == 1
    assert "did not load" in refused.stdout and "weights file truncated" in refused.stdout
    # a retry is asked for explicitly, and is refused the same way
    retried = cli(run_dir, tmp, "endpoints", "deploy", "--version", str(flipped))
    assert retried.returncode == 1 and f"version {flipped} was not deployed" in retried.stderr

    record = EndpointStore(workspace.endpoints_dir).load()[staging]
    assert record.version == 1
    outcomes = [(entry.version, entry.outcome) for entry in record.history]
    assert outcomes == [(1, "Deployed"), (flipped, "Failed"), (broken, "Failed"), (flipped, "Failed")]
    assert "is 'negative', not positive" in record.history[1].reason
    info = ServerInfo.read(workspace.endpoints_dir)
    assert len(invoke(info.url, staging, ["Still answering"])[0]) == 1


def test_requests_during_a_swap_all_succeed_and_duplicate_events_change_nothing(setup) -> None:
    run_dir, tmp, workspace = setup
    staging = workspace.config.endpoint_name("staging")
    info = ServerInfo.read(workspace.endpoints_dir)
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        good = workspace.local_path(
            registry.describe(workspace.config.model_package_group_name, 1).model_data_url
        )
    retrained = register(workspace, good, "retrained")

    stop, answers, errors = threading.Event(), [], []

    def client() -> None:
        runtime = runtime_client(info.url)
        while not stop.is_set():
            try:
                answer = runtime.invoke_endpoint(
                    EndpointName=staging, Body='{"features": ["Nice"]}', ContentType="application/json"
                )
                answers.append(json.loads(answer["Body"].read()))
            except Exception as error:
                errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        out = ok(cli(run_dir, tmp, "registry", "approve", str(retrained)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert f"version {retrained} now takes the traffic" in out
    assert not errors and len(answers) > 10
    assert EndpointStore(workspace.endpoints_dir).load()[staging].version == retrained

    # EventBridge may deliver an approval twice: the second delivery leaves the endpoint alone.
    event = read_events(workspace.events_dir)[-1]
    assert event["detail"]["ModelPackageVersion"] == retrained
    duplicate = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from pipelines.local.events import EventLog; "
            "from pipelines.local.workspace import Workspace; "
            "from model_deploy.local.rollout import on_model_package_event as rollout; "
            "print(EventLog(Workspace.open(sys.argv[1]), [rollout]).publish(json.loads(sys.argv[2])))",
            str(workspace.root),
            json.dumps(event),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLOPS_LOCAL_ROLLOUT": "on"},
    )
    assert duplicate.returncode == 0, duplicate.stderr
    assert f"already serves version {retrained}" in duplicate.stdout
    assert len(EndpointStore(workspace.endpoints_dir).load()[staging].history) == 5

    # Rejecting the serving version rolls staging back to the newest approved version that did not fail.
    out = ok(cli(run_dir, tmp, "registry", "reject", str(retrained)))
    assert "skipped" in out and f"version {retrained} was not deployed" not in out
    record = EndpointStore(workspace.endpoints_dir).load()[staging]
    assert record.version == 1
    last = record.history[-1]  # a rollback, with the rejection that caused it
    assert (last.outcome, last.version, last.reason) == ("RolledBack", 1, f"version {retrained} was Rejected")
    assert f"rolled back to version 1 (version {retrained} was Rejected)" in out


def test_the_server_restores_its_endpoints_after_a_restart_and_cleans_up_on_stop(setup) -> None:
    run_dir, tmp, workspace = setup
    served = {name: record.version for name, record in EndpointStore(workspace.endpoints_dir).load().items()}
    assert "Stopped the endpoint server" in ok(cli(run_dir, tmp, "endpoints", "stop"))
    assert ServerInfo.read(workspace.endpoints_dir) is None
    assert not list(tmp.glob("mlops-endpoint-*"))  # every unpacked model removed
    assert "OutOfService" in ok(cli(run_dir, tmp, "endpoints"))

    ok(cli(run_dir, tmp, "endpoints", "start"))
    info = ServerInfo.read(workspace.endpoints_dir)
    for name in served:
        for _ in range(600):  # restored in the background: Creating, then InService
            status = EndpointClient(info).describe(name)
            if status["EndpointStatus"] == "InService":
                break
            threading.Event().wait(0.2)
        assert status["Version"] == served[name]
        assert len(invoke(info.url, name, ["Back again"])[0]) == 1
