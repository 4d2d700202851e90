"""The local runner's mechanics on a toy pipeline: order, container contract, cache, condition, failures."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from model_build.pipeline_spec import JOB_RETRIES
from pipelines.local.events import read_events
from pipelines.local.executions import ExecutionStore, Status
from pipelines.local.registry import ModelRegistry
from pipelines.local.workspace import Workspace
from pipelines.runners.local import LocalRunner
from tests.pipelines.toy_pipeline import SPEC, make_repo

TOY_SCRIPT = Path(__file__).with_name("toy_pipeline.py")


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Workspace]:
    monkeypatch.setenv("TOY_MARKERS", str(tmp_path / "markers"))
    return make_repo(tmp_path / "repo"), Workspace.open(tmp_path / "run")


def run(toy: tuple[Path, Workspace], **overrides: object):
    repo, workspace = toy
    return LocalRunner(workspace, SPEC, repo_root=repo, console=io.StringIO()).run(overrides)


def statuses(record) -> list[tuple[str, str, bool]]:
    return [(step.name, str(step.status), step.cache_hit is not None) for step in record.steps]


def test_steps_run_offline_for_the_hub_unless_the_user_says_otherwise(toy, monkeypatch):
    repo, workspace = toy
    runner = LocalRunner(workspace, SPEC, repo_root=repo, console=io.StringIO())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert runner._base_environment()["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a user who wants a run to download a model
    assert runner._base_environment()["HF_HUB_OFFLINE"] == "0"


def test_true_branch_runs_every_step_in_order_and_registers(toy):
    record = run(toy)
    _, workspace = toy
    assert record.status == Status.SUCCEEDED, record.failure_reason
    assert statuses(record) == [
        ("Prep", "Succeeded", False),
        ("Fit", "Succeeded", False),
        ("Score", "Succeeded", False),
        ("Check", "Succeeded", False),
        ("CheckF1", "Succeeded", False),
        ("Register", "Succeeded", False),
    ]
    assert record.skipped == ["Fail", "FailF1"]  # described, in branches not taken
    # Outputs were published to the execution's S3 location, the model packed as SageMaker packs it.
    model = workspace.local_path(record.step("Fit").outputs["model"])
    assert model.name == "model.tar.gz"
    with tarfile.open(model) as tar:
        assert sorted(tar.getnames()) == ["code", "code/inference.py", "weights.json"]
    assert record.step("Fit").metrics == {"validation:accuracy": 0.9}
    assert record.step("Check").detail == {
        "checks": [
            {
                "check": "accuracy",
                "json_path": "metrics.accuracy.value",
                "left": 0.9,
                "operator": ">=",
                "right": 0.5,
                "outcome": True,
            }
        ],
        "outcome": True,
    }
    # The registered version points at that artifact, with the evaluation report and lineage.
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        package = registry.describe(workspace.config.model_package_group_name, 1)
    assert package.model_data_url == record.step("Fit").outputs["model"]
    assert package.metric("accuracy") == 0.9
    assert package.lineage.execution_id == record.id
    assert package.lineage.parameters["Factor"] == "2"
    assert len(package.lineage.input_data_sha256) == 64
    # Each job records the retry policies SageMaker's definition holds, and its one attempt.
    for name in ("Prep", "Fit", "Score"):
        assert record.step(name).detail["retry_policies"] == [p.request() for p in JOB_RETRIES]
        assert record.step(name).attempt_count == 1
    assert "retry_policies" not in record.step("Check").detail
    # Each step's log is kept; the work folders are gone once the outputs are published.
    assert "prepared" in Path(record.step("Prep").log).read_text()
    assert not (workspace.executions_dir / record.id / "work" / "Prep").exists()
    events = read_events(workspace.events_dir)
    assert [event["detail"]["ModelPackageVersion"] for event in events] == [1]


def test_a_second_condition_in_the_first_ones_branch_gates_with_the_same_handlers(toy):
    record = run(toy, MinF1=0.9)
    _, workspace = toy
    assert record.status == Status.FAILED
    assert record.failure_reason == "F1 0.5 is below 0.9."
    assert [step.name for step in record.steps] == ["Prep", "Fit", "Score", "Check", "CheckF1", "FailF1"]
    assert record.skipped == ["Register", "Fail"]
    assert record.step("CheckF1").detail["outcome"] is False
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        assert registry.list(workspace.config.model_package_group_name) == []


def test_false_branch_fails_with_the_reason_and_registers_nothing(toy):
    record = run(toy, MinAccuracy=0.95)
    _, workspace = toy
    assert record.status == Status.FAILED
    assert record.failure_reason == "Accuracy 0.9 is below 0.95."
    assert [step.name for step in record.steps][-2:] == ["Check", "Fail"]
    assert record.step("Check").detail["outcome"] is False
    assert not workspace.registry_path.exists() or not ModelRegistry(
        workspace.registry_path, workspace.config.region
    ).list(workspace.config.model_package_group_name)


def test_cache_hits_when_nothing_changed_and_misses_downstream_of_a_change(toy):
    first = run(toy)
    again = run(toy)
    assert statuses(again)[:3] == [
        ("Prep", "Succeeded", True),
        ("Fit", "Succeeded", True),
        ("Score", "Succeeded", True),
    ]
    assert again.step("Fit").cache_hit == first.id
    assert again.step("Fit").outputs == first.step("Fit").outputs
    assert again.step("Fit").metrics == first.step("Fit").metrics  # reported from the source execution

    # A training-only parameter: processing is reused, training and evaluation rerun.
    changed = run(toy, Accuracy=0.8)
    assert [s[2] for s in statuses(changed)[:3]] == [True, False, False]

    # A change to the input data's content misses from the first step on.
    repo, _ = toy
    (repo / "data" / "input.txt").write_text("a different review\n")
    assert [s[2] for s in statuses(run(toy))[:3]] == [False, False, False]


def test_code_change_misses_and_missing_outputs_miss(toy):
    repo, workspace = toy
    first = run(toy)
    (repo / "model_build" / "steps" / "prep.py").write_text(
        (repo / "model_build" / "steps" / "prep.py").read_text() + "\n# edited\n"
    )
    assert not run(toy).step("Prep").cache_hit
    # A step's code is its own script (and what it imports): editing training reuses processing.
    (repo / "model_build" / "steps" / "fit.py").write_text(
        (repo / "model_build" / "steps" / "fit.py").read_text() + "\n# edited\n"
    )
    edited = run(toy)
    assert edited.step("Prep").cache_hit is not None and edited.step("Fit").cache_hit is None
    # Outputs deleted by hand: the cache entry no longer counts.
    second = run(toy)
    workspace.local_path(second.step("Fit").outputs["model"]).unlink()
    assert run(toy).step("Fit").cache_hit is None
    assert first.id != second.id


def test_no_cache_runs_every_step(toy):
    repo, workspace = toy
    run(toy)
    record = LocalRunner(workspace, SPEC, repo_root=repo, use_cache=False, console=io.StringIO()).run({})
    assert not any(step.cache_hit for step in record.steps)


def test_failed_step_fails_the_execution_then_a_rerun_reuses_processing(toy):
    failed = run(toy, Die="error")
    assert failed.status == Status.FAILED
    assert statuses(failed) == [("Prep", "Succeeded", False), ("Fit", "Failed", False)]
    assert "exited with code 1" in failed.failure_reason
    assert "bad things happened" in failed.failure_reason  # the script's last lines, not just a code

    rerun = run(toy)
    assert rerun.status == Status.SUCCEEDED
    assert rerun.step("Prep").cache_hit == failed.id
    assert rerun.step("Fit").cache_hit is None


def test_killed_step_is_reported_as_killed(toy):
    record = run(toy, Die="kill")
    assert record.status == Status.FAILED
    assert "killed by signal 9" in record.step("Fit").failure_reason


def test_missing_input_is_a_clear_step_failure(toy):
    record = run(toy, InputDataUrl="data/nope.csv")
    assert record.status == Status.FAILED
    assert "Prep input 'raw'" in record.failure_reason and "nope.csv does not exist" in record.failure_reason


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_is_marked_failed_and_the_next_run_works(toy, tmp_path, signum):
    repo, workspace = toy
    marker = tmp_path / "markers" / "fit-started"
    process = subprocess.Popen(
        [sys.executable, str(TOY_SCRIPT), str(repo), str(workspace.root), "Sleep=60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TOY_MARKERS": str(marker.parent)},
        preexec_fn=_default_signal_dispositions,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the toy training never started"
        time.sleep(0.05)
    fit_pid = int(marker.read_text())
    process.send_signal(signum)
    assert process.wait(30) != 0

    [record] = ExecutionStore(workspace.executions_dir).list()
    assert record.status == Status.FAILED
    assert record.failure_reason == f"interrupted ({signal.Signals(signum).name})"
    assert statuses(record) == [("Prep", "Succeeded", False), ("Fit", "Failed", False)]
    worker_pid = int((marker.parent / "worker").read_text())
    for pid in (fit_pid, worker_pid):  # the step's process and the worker it started were stopped too
        deadline = time.monotonic() + 30
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid)
    json.loads(
        (workspace.executions_dir / record.id / "execution.json").read_text()
    )  # whole, not half-written

    rerun = run(toy)
    assert rerun.status == Status.SUCCEEDED
    assert rerun.step("Prep").cache_hit == record.id


def _default_signal_dispositions() -> None:
    """In the child before exec: SIGINT/SIGTERM back to their defaults, as from an interactive shell.

    A shell that ignores SIGINT (a background job, nohup, some CI runners) passes that on through exec, and
    Python then installs no KeyboardInterrupt handler: the test would measure the shell, not the runner.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie worker is gone, just not yet reaped by its init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_an_interruption_while_the_script_starts_still_stops_it(tmp_path, monkeypatch, request):
    """The window between Popen and the code that stops the script: a signal there is held, then raised."""
    from pipelines.local import container

    real_popen = subprocess.Popen
    started: list[subprocess.Popen] = []

    def popen_then_ctrl_c(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        started.append(process)
        os.kill(os.getpid(), signal.SIGINT)  # lands before run_script's try, as under load it can
        return process

    monkeypatch.setattr(container.subprocess, "Popen", popen_then_ctrl_c)
    # Python's own Ctrl-C handler, whatever the shell that started pytest left (SIG_IGN from a background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    script = tmp_path / "sleep.py"
    script.write_text("import time\ntime.sleep(60)\n")
    run = container.ScriptRun(script, [], tmp_path, dict(os.environ), tmp_path / "log.txt")
    with pytest.raises(KeyboardInterrupt):
        container.run_script(run, io.BytesIO())
    (process,) = started
    assert process.poll() is not None  # stopped and reaped, not left sleeping
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


def test_a_runner_killed_outright_leaves_a_record_read_as_failed(toy):
    _, workspace = toy
    store = ExecutionStore(workspace.executions_dir)
    record = store.create("toy", {})
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    record.pid = int(dead.stdout)
    store.save(record)
    reread = store.load(record.id)
    assert reread.status == Status.FAILED
    assert "ended without finishing" in reread.failure_reason
