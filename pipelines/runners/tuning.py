"""The local twin of SageMaker's hyperparameter tuning job: a seeded Optuna search over training trials.

The search space and the objective come from the pipeline description (:class:`TuningStep`), as they do for
SageMaker's tuner; what a trial *is* (a training run under the container contract) is the caller's ``fit``.
Trials run ``parallel`` at a time; each batch is drawn with Optuna's ask-and-tell and told back in trial
order, so the same seed and the same trial results give the same sequence of trials, whatever finishes
first. A trial that fails is recorded with its reason and the search goes on; the search fails only when no
trial succeeds. An interruption stops every running trial before it goes on.

SageMaker's tuner stops trials early (``TrainingJobEarlyStoppingType=Auto``); the local search runs each
trial to its end: a trial here is a few minutes of CPU, and stopping one saves less than it costs in
reproducibility.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, Literal

from model_build.pipeline_spec import SearchRange

Fit = Callable[[int, dict[str, str], threading.Event], Mapping[str, Sequence[float]]]
"""``fit(trial number, drawn hyperparameters, cancel)`` -> the metric series the trial printed."""


class NoTrialSucceeded(RuntimeError):
    """Every trial failed: the message lists why each one did."""


@dataclass
class Trial:
    """One training run of the search, as the execution records it."""

    number: int
    hyperparameters: dict[str, str]
    status: Literal["Completed", "Failed"]
    objective: float | None
    seconds: float
    reason: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "hyperparameters": self.hyperparameters,
            "status": self.status,
            "objective": self.objective,
            "seconds": round(self.seconds, 1),
            "reason": self.reason,
        }


def distributions(ranges: Sequence[SearchRange]) -> dict[str, Any]:
    """The search space in Optuna's terms: one distribution per hyperparameter."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, Any] = {}
    for search_range in ranges:
        log = search_range.scaling == "Logarithmic"
        if search_range.kind == "Continuous":
            found[search_range.hyperparameter] = FloatDistribution(
                search_range.low, search_range.high, log=log
            )
        elif search_range.kind == "Integer":
            found[search_range.hyperparameter] = IntDistribution(
                int(search_range.low), int(search_range.high), log=log
            )
        else:
            found[search_range.hyperparameter] = CategoricalDistribution(search_range.values)
    return found


def render(value: object) -> str:
    """A drawn value as the script receives it: plain decimals, never scientific notation."""
    if isinstance(value, float):
        return f"{value:.8f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def search(
    ranges: Sequence[SearchRange],
    objective: str,
    max_jobs: int,
    parallel: int,
    seed: int,
    fit: Fit,
    progress: IO[str] | None = None,
) -> list[Trial]:
    """Run ``max_jobs`` trials, ``parallel`` at a time, maximizing the last value of ``objective``."""
    import optuna
    from tqdm.auto import tqdm

    if max_jobs < 1 or parallel < 1:
        raise ValueError(f"a search needs at least one job and one at a time, got {max_jobs} and {parallel}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    space = distributions(ranges)
    trials: list[Trial] = []
    cancel = threading.Event()
    with (
        tqdm(total=max_jobs, desc="tuning", unit=" trials", file=progress, mininterval=1.0) as bar,
        ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="trial") as pool,
    ):
        try:
            while len(trials) < max_jobs:
                batch = [study.ask(space) for _ in range(min(parallel, max_jobs - len(trials)))]
                drawn = [{name: render(value) for name, value in ask.params.items()} for ask in batch]
                futures = [
                    pool.submit(_run_trial, fit, ask.number, values, objective, cancel)
                    for ask, values in zip(batch, drawn, strict=True)
                ]
                for ask, future in zip(batch, futures, strict=True):
                    trial = future.result()
                    trials.append(trial)
                    if trial.objective is None:
                        study.tell(ask, state=optuna.trial.TrialState.FAIL)
                    else:
                        study.tell(ask, trial.objective)
                    bar.update()
                completed = [t.objective for t in trials if t.objective is not None]
                if completed:
                    bar.set_postfix(best=f"{max(completed):.4f}")
        except BaseException:
            cancel.set()  # stop the running trials before the pool waits for them
            raise
    if all(trial.objective is None for trial in trials):
        raise NoTrialSucceeded(
            f"all {len(trials)} tuning trials failed: "
            + "; ".join(f"trial {trial.number}: {trial.reason}" for trial in trials)
        )
    return trials


def best(trials: Sequence[Trial]) -> Trial:
    """The completed trial with the highest objective; the earlier one on a tie."""
    completed = [trial for trial in trials if trial.objective is not None]
    return max(completed, key=lambda trial: (trial.objective, -trial.number))


def _run_trial(
    fit: Fit, number: int, hyperparameters: dict[str, str], objective: str, cancel: threading.Event
) -> Trial:
    started = time.perf_counter()
    try:
        series = fit(number, hyperparameters, cancel)
    except Exception as error:  # a failed trial is recorded and skipped, as SageMaker's tuner does
        lines = str(error).splitlines() or [type(error).__name__]
        reason = lines[0] + (f": {lines[-1].strip()}" if len(lines) > 1 else "")  # what, and its last word
        return Trial(number, hyperparameters, "Failed", None, time.perf_counter() - started, reason)
    values = list(series.get(objective, ()))
    seconds = time.perf_counter() - started
    if not values or not math.isfinite(values[-1]):
        reason = f"the trial printed no value of the objective {objective!r}"
        return Trial(number, hyperparameters, "Failed", None, seconds, reason)
    return Trial(number, hyperparameters, "Completed", float(values[-1]), seconds)


def summary(trials: Sequence[Trial], objective: str) -> str:
    """The trials as a table, best marked: what the console and the execution's page show."""
    chosen = best(trials).number
    names = sorted({name for trial in trials for name in trial.hyperparameters})
    header = ["trial", *names, objective, "seconds", ""]
    rows = [
        [
            str(trial.number),
            *(trial.hyperparameters.get(name, "") for name in names),
            f"{trial.objective:.4f}" if trial.objective is not None else "failed",
            f"{trial.seconds:.0f}",
            "<- best" if trial.number == chosen else (trial.reason or "")[:60],
        ]
        for trial in trials
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join(
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
