"""``python -m pipelines monitor``'s plumbing on a constructed run folder: which baseline, which captures, the
record of each run, and retraining once per cool-down (the pipeline itself stubbed; the end-to-end test runs
it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from model_deploy.local import monitoring
from model_deploy.local.state import EndpointRecord, EndpointStore
from pipelines.local.cache import content_hash
from pipelines.local.registry import Lineage, ModelRegistry
from pipelines.local.workspace import REPO_ROOT, Workspace
from tests.model_build import monitoring_windows as w


def NOT_CALLED(overrides: dict[str, object]) -> None:
    """A pipeline starter for tests that replace ``_run_pipeline``: retraining is on, the runner never runs."""
    pytest.fail("the test's _run_pipeline starts the pipeline, not this")


def served_workspace(root: Path, with_baseline: bool = True, input_sha256: str = "0" * 64) -> Workspace:
    """A run folder whose prod endpoint serves version 1, evaluated with a (constructed) baseline; its input
    held ``input_sha256`` (by default not what data/reviews_sample.csv holds now: the data changed)."""
    workspace = Workspace.open(root)
    register_evaluated(workspace, "e1", with_baseline, input_sha256)
    name = workspace.config.endpoint_name("prod")
    EndpointStore(workspace.endpoints_dir).save({name: EndpointRecord(name, "prod", version=1)})
    return workspace


def register_evaluated(
    workspace: Workspace, execution: str, with_baseline: bool = True, input_sha256: str = "0" * 64
) -> int:
    """A new version built by ``execution``, its evaluation report beside a (constructed) baseline."""
    report = f"s3://{workspace.artifacts_bucket}/pipelines/build/{execution}/EvaluateModel/evaluation/evaluation.json"
    if with_baseline:
        w.write_baseline(workspace.local_path(report).parent / monitoring.BASELINE_FOLDER)
    lineage = Lineage(
        execution, f"arn:{execution}", {"Epochs": 1}, "data/reviews_sample.csv", input_sha256, "1" * 64, None
    )
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        return registry.register(
            workspace.config.model_package_group_name,
            f"s3://{workspace.artifacts_bucket}/models/{execution}/model.tar.gz",
            lineage,
            content_types=["application/json"],
            response_types=["application/json"],
            inference_instance_types=["ml.m5.large"],
            metrics={},
            metrics_report_uri=report,
        ).version


def captures_of(workspace: Workspace) -> Path:
    return workspace.data_capture_root("prod") / workspace.config.endpoint_name("prod")


def test_drift_retrains_once_per_cooldown_and_every_run_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = served_workspace(tmp_path / "run")
    texts = w.reviews(200, (70, 90, 120), seed=3)  # much longer than the baseline's
    w.write_window(captures_of(workspace), texts, w.predictions(200, w.BASE_SHARES), datetime.now(UTC))
    started: list[int] = []

    def pipeline(ws: Workspace, version: int, start: object) -> SimpleNamespace:
        started.append(version)
        return SimpleNamespace(id=f"exec-{len(started)}")

    monkeypatch.setattr(monitoring, "_run_pipeline", pipeline)
    assert monitoring.command(workspace, None, "1h", None, start_pipeline=NOT_CALLED) == 1
    out = capsys.readouterr().out
    assert (
        f"{workspace.config.endpoint_name('prod')} (version 1's baseline)" in out
        and "verdict     drift" in out
    )
    assert "Drift: starting a pipeline run" in out and "retraining  started execution exec-1" in out
    assert started == [1]
    assert monitoring.command(workspace, "prod", "1h", None, start_pipeline=NOT_CALLED) == 1
    out = capsys.readouterr().out
    assert started == [1] and "within the 24 h cool-down (retrain_cooldown_hours" in out
    assert "Drift: starting" not in out  # nothing started, nothing announced

    runs = monitoring.MonitoringRunStore(monitoring.monitoring_dir(workspace)).list()
    assert [(run.verdict, run.stage, run.version, run.reviews) for run in runs] == [
        ("drift", "prod", 1, 200)
    ] * 2
    assert runs[0].retraining == "started execution exec-1"
    assert runs[1].retraining.startswith("not started: execution exec-1 was started at ")
    report = json.loads(Path(runs[0].report).read_text())
    assert report["inputs"]["captures"] == str(captures_of(workspace))
    assert report["thresholds"]["min_reviews"] == 100  # the prod stage file's
    assert Path(runs[0].picture).is_file() and Path(runs[0].log).read_text().startswith("$ ")

    # once the cool-down is over, drift retrains again
    later = datetime.now(UTC) + timedelta(hours=25)
    assert (
        monitoring.retrain(workspace, runs[1], lambda: SimpleNamespace(id="exec-9"), now=later).retraining
        == "started execution exec-9"
    )


def test_drift_on_the_data_the_version_was_built_from_does_not_retrain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built_from = content_hash(REPO_ROOT / "data" / "reviews_sample.csv")
    workspace = served_workspace(tmp_path / "run", input_sha256=built_from)
    texts = w.reviews(200, (70, 90, 120), seed=3)
    w.write_window(captures_of(workspace), texts, w.predictions(200, w.BASE_SHARES), datetime.now(UTC))
    monkeypatch.setattr(
        monitoring, "_run_pipeline", lambda ws, v, start: pytest.fail("the same data, the same model")
    )
    assert monitoring.command(workspace, "prod", "1h", None, start_pipeline=NOT_CALLED) == 1
    assert "retraining  not started: the input data/reviews_sample.csv holds the data version 1" in (
        capsys.readouterr().out
    )
    (run,) = monitoring.MonitoringRunStore(monitoring.monitoring_dir(workspace)).list()
    assert run.verdict == "drift" and "add the new reviews there first" in run.retraining


def test_no_traffic_is_exit_status_3_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = served_workspace(tmp_path / "run")
    monkeypatch.setattr(
        monitoring, "_run_pipeline", lambda ws, v, start: pytest.fail("no retraining without drift")
    )
    assert monitoring.command(workspace, "prod", None, None, start_pipeline=NOT_CALLED) == 3
    out = capsys.readouterr().out
    assert "prod captures 20% of requests (data_capture.sampling_percentage" in out
    assert "judged from 100 captured reviews (monitoring.thresholds.min_reviews) and this one holds 0" in out
    assert "retraining  not started: the verdict is no_traffic, not drift" in out
    (run,) = monitoring.MonitoringRunStore(monitoring.monitoring_dir(workspace)).list()
    assert (
        run.verdict == "no_traffic" and run.retraining == "not started: the verdict is no_traffic, not drift"
    )


def test_what_is_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        monitoring.MonitoringError, match=r"no local endpoint .*-prod; the endpoints are: none yet"
    ):
        monitoring.monitor_endpoint(Workspace.open(tmp_path / "empty"))
    workspace = served_workspace(tmp_path / "run", with_baseline=False)
    with pytest.raises(monitoring.MonitoringError, match="version 1 has no monitoring baseline"):
        monitoring.monitor_endpoint(workspace)
    name = workspace.config.endpoint_name("staging")
    EndpointStore(workspace.endpoints_dir).save({name: EndpointRecord(name, "staging")})
    with pytest.raises(monitoring.MonitoringError, match="serves no version yet"):
        monitoring.monitor_endpoint(workspace, "staging")


def test_a_window_is_judged_against_the_version_that_answered_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prod serves version 1 now, but the window's traffic was answered by version 2 (rolled back since):
    the captures say so, and the window is labelled and judged with version 2's baseline."""
    from model_deploy.local.capture import CaptureWriter

    workspace = served_workspace(tmp_path / "run")
    assert register_evaluated(workspace, "e2") == 2
    writer = CaptureWriter(
        workspace.data_capture_root("prod"), workspace.config.endpoint_name("prod"), "AllTraffic", 100
    )
    texts = w.reviews(120, w.IN_DISTRIBUTION_LENGTHS, seed=4)
    answers = w.predictions(120, w.BASE_SHARES)
    for start in range(0, 120, 4):
        body = json.dumps({"features": texts[start : start + 4]}).encode()
        answer = [{"sentiment": s, "probability": p} for s, p in answers[start : start + 4]]
        writer.write(body, "application/json", json.dumps(answer).encode(), "application/json", None, 2)
    writer.close()

    assert monitoring.command(workspace, "prod", "1h", None, start_pipeline=None) == 0
    out = capsys.readouterr().out
    assert "(version 2's baseline)" in out and "answered by version 2 (120 reviews)" in out
    (run,) = monitoring.MonitoringRunStore(monitoring.monitoring_dir(workspace)).list()
    assert run.version == 2 and run.answered_by == {"2": 120} and run.verdict == "no_drift"
    assert "/e2/" in json.loads(Path(run.report).read_text())["inputs"]["baseline"]


def test_a_retraining_repeats_the_versions_parameters_but_finds_todays_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version's parameters say which champion it was compared with then; the retraining leaves them out,
    so the runner finds the champion of the day (what prod serves now)."""
    from model_build.pipeline_spec import CHAMPION_PARAMETER, CHAMPION_URL_PARAMETER

    workspace = Workspace.open(tmp_path / "run")
    old = {"Epochs": "1", CHAMPION_PARAMETER: "arn:old", CHAMPION_URL_PARAMETER: "s3://b/old/model.tar.gz"}
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        registry.register(
            workspace.config.model_package_group_name,
            f"s3://{workspace.artifacts_bucket}/models/m/model.tar.gz",
            Lineage("e1", "arn:e1", old, "data/reviews_sample.csv", "0" * 64, "1" * 64, None),
            content_types=["application/json"],
            response_types=["application/json"],
            inference_instance_types=["ml.m5.large"],
            metrics={},
        )
    started: list[dict[str, object]] = []
    monitoring._run_pipeline(
        workspace, 1, lambda overrides: started.append(overrides) or SimpleNamespace(id="x", status="ok")
    )
    assert started == [{"Epochs": "1"}]
