"""The local tuning step on the toy pipeline: a seeded search whose trials are training runs of their own.

The toy's training script scores ``1 - (accuracy - 0.8)^2`` as its objective and fails for an accuracy above
0.95, so a search must find the trials near 0.8, record the failures, and publish the best trial's model.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import pytest

from model_build.pipeline_spec import PipelineSpec, SearchRange, TrainingStep, TuningStep
from pipelines.local.executions import Status
from pipelines.local.workspace import Workspace
from pipelines.runners import tuning
from pipelines.runners.local import LocalRunner
from tests.pipelines.toy_pipeline import SPEC, make_repo

TUNED_FIT = """
import argparse, json, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--accuracy", type=float); parser.add_argument("--sleep"); parser.add_argument("--die")
parser.add_argument("--width", default="narrow"); parser.add_argument("--checkpoint-dir")
args = parser.parse_args()
if args.accuracy > 0.95:
    raise SystemExit(f"fit: accuracy {args.accuracy} is too good to be true")
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "weights.json").write_text(json.dumps({"accuracy": args.accuracy, "width": args.width,
                                                "threads": os.environ.get("OMP_NUM_THREADS")}))
(model / "code").mkdir()
(model / "code" / "inference.py").write_text("")
print(f"epoch=1 val_acc={args.accuracy:.6f}")
print(f"best_objective={1 - (args.accuracy - 0.8) ** 2:.6f}")
"""


def tuned_spec(max_jobs: int = 6, parallel: int = 2) -> PipelineSpec:
    """The toy pipeline with its training step searching ``accuracy`` (and a categorical ``width``)."""
    fit = SPEC.step("Fit")
    assert isinstance(fit, TrainingStep)
    fields = {f.name: getattr(fit, f.name) for f in dataclasses.fields(TrainingStep)}
    tuned = TuningStep(
        **{
            **fields,
            "hyperparameters": {**fit.hyperparameters, "width": "narrow"},
            "metric_definitions": (*fit.metric_definitions, ("objective", r"best_objective=([0-9.]+)")),
        },
        objective="objective",
        ranges=(
            SearchRange("accuracy", "Continuous", 0.5, 1.0),
            SearchRange("width", "Categorical", values=("narrow", "wide")),
        ),
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        random_seed=7,
    )
    return dataclasses.replace(SPEC, steps=tuple(tuned if s.name == "Fit" else s for s in SPEC.steps))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOY_MARKERS", str(tmp_path / "markers"))
    folder = make_repo(tmp_path / "repo")
    (folder / "model_build" / "steps" / "fit.py").write_text(TUNED_FIT)
    return folder


def run(repo: Path, run_dir: Path, spec: PipelineSpec):
    console = io.StringIO()
    runner = LocalRunner(Workspace.open(run_dir), spec, repo_root=repo, console=console, use_cache=False)
    return runner.run({"MinAccuracy": 0.0}), console.getvalue(), runner.workspace


def test_a_search_records_every_trial_and_publishes_the_best_ones_model(repo: Path, tmp_path: Path) -> None:
    record, console, workspace = run(repo, tmp_path / "run", tuned_spec())
    assert record.status == Status.SUCCEEDED, record.failure_reason
    fit = next(step for step in record.steps if step.name == "Fit")
    trials = fit.detail["trials"]
    assert [trial["number"] for trial in trials] == list(range(6))
    assert {trial["status"] for trial in trials} <= {"Completed", "Failed"}
    for trial in trials:
        accuracy = float(trial["hyperparameters"]["accuracy"])
        assert 0.5 <= accuracy <= 1.0 and trial["hyperparameters"]["width"] in ("narrow", "wide")
        if accuracy > 0.95:  # the script's own failure: recorded with its reason, the search went on
            assert trial["status"] == "Failed" and "too good to be true" in trial["reason"]
        else:
            assert trial["objective"] == pytest.approx(1 - (accuracy - 0.8) ** 2, abs=1e-6)
    completed = [trial for trial in trials if trial["status"] == "Completed"]
    best = max(completed, key=lambda trial: trial["objective"])
    assert fit.detail["best_trial"] == best["number"]
    assert fit.metrics["objective"] == pytest.approx(best["objective"])

    # The step's model is the best trial's, and the evaluation step read it.
    with tarfile.open(workspace.local_path(fit.outputs["model"])) as archive:
        weights = json.load(archive.extractfile("weights.json"))  # type: ignore[arg-type]
    assert weights["accuracy"] == pytest.approx(float(best["hyperparameters"]["accuracy"]))
    assert weights["width"] == best["hyperparameters"]["width"]
    assert weights["threads"] is not None, "trials side by side share the cores"
    assert len(fit.detail["trial_logs"]) == 6 and all(Path(log).is_file() for log in fit.detail["trial_logs"])
    assert "<- best" in console and "tuning: 6 trials, 2 at a time" in console
    assert not list((workspace.executions_dir / record.id / "work").glob("Fit-trial-*")), "trial folders left"


def test_the_same_seed_draws_the_same_trials_and_picks_the_same_model(repo: Path, tmp_path: Path) -> None:
    first, _, _ = run(repo, tmp_path / "first", tuned_spec(max_jobs=4))
    second, _, _ = run(repo, tmp_path / "second", tuned_spec(max_jobs=4))

    def trials(record) -> list[tuple[dict[str, str], float | None]]:
        fit = next(step for step in record.steps if step.name == "Fit")
        return [(trial["hyperparameters"], trial["objective"]) for trial in fit.detail["trials"]]

    assert trials(first) == trials(second)


def test_no_jobs_trains_once_with_the_parameters_as_set(repo: Path, tmp_path: Path) -> None:
    record, console, _ = run(repo, tmp_path / "run", tuned_spec(max_jobs=0))
    assert record.status == Status.SUCCEEDED, record.failure_reason
    fit = next(step for step in record.steps if step.name == "Fit")
    assert "trials" not in fit.detail and "tuning:" not in console
    assert fit.metrics["validation:accuracy"] == pytest.approx(0.9)  # the toy's Accuracy default


def test_a_search_whose_every_trial_fails_fails_the_step_with_each_reason(repo: Path, tmp_path: Path) -> None:
    spec = tuned_spec(max_jobs=2, parallel=1)
    fit = spec.step("Fit")
    assert isinstance(fit, TuningStep)
    hopeless = dataclasses.replace(fit, ranges=(SearchRange("accuracy", "Continuous", 0.96, 0.99),))
    spec = dataclasses.replace(spec, steps=tuple(hopeless if s.name == "Fit" else s for s in spec.steps))
    record, _, _ = run(repo, tmp_path / "run", spec)
    assert record.status == Status.FAILED
    assert "all 2 tuning trials failed" in (record.failure_reason or "")
    assert "trial 0:" in (record.failure_reason or "") and "too good to be true" in (
        record.failure_reason or ""
    )


def test_search_ranges_are_checked_when_the_description_is_written() -> None:
    with pytest.raises(ValueError, match="low < high"):
        SearchRange("learning-rate", "Continuous", 0.1, 0.1)
    with pytest.raises(ValueError, match="logarithmic"):
        SearchRange("learning-rate", "Continuous", 0.0, 0.1, scaling="Logarithmic")
    with pytest.raises(ValueError, match="categorical"):
        SearchRange("batch", "Categorical")
    fit = tuned_spec().step("Fit")
    with pytest.raises(ValueError, match="objective"):
        dataclasses.replace(fit, objective="nowhere")
    with pytest.raises(ValueError, match="unknown"):
        dataclasses.replace(fit, ranges=(SearchRange("nosuch", "Integer", 1, 3),))


def test_drawn_values_reach_the_script_as_plain_decimals() -> None:
    assert tuning.render(0.00002) == "0.00002"
    assert tuning.render(3) == "3" and tuning.render("16") == "16" and tuning.render(0.0) == "0"
