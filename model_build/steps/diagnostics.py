"""Training diagnostics: SageMaker Debugger's built-in rules, computed from what the training loop already sees.

SageMaker Debugger watched a training job through its hook library (``smdebug``), which hooks PyTorch's modules
and saves tensors for rule jobs to read. That library is no longer maintained and does not support current
PyTorch (docs/data-scientists.md, "Training diagnostics"), so the same rules run here, inside the job, on
numbers ``Trainer`` computes anyway: each step's loss and pre-clipping gradient norm, each evaluation's losses
and predictions, and the step's wall time split into waiting for the batch and computing on it.

Rules (:data:`RULES`), each with an action (:data:`ACTIONS`) that a pipeline parameter sets
(``model_build/pipeline_spec.py``, ``Diagnose*``): ``warn`` logs the verdict, ``stop`` also stops the training
job with the verdict's message (Debugger's ``StopTraining`` action), ``off`` skips the rule.

- ``loss_not_decreasing``: the mean training loss of the last :attr:`Thresholds.window_steps` steps is not
  below that of the window before it, or the loss is not a finite number (Debugger's ``LossNotDecreasing``);
- ``overfitting``: the validation loss rose for :attr:`Thresholds.overfit_patience` evaluations in a row
  while the training loss fell (``Overfit``);
- ``gradient_norm``: the gradient norm before clipping is not finite or above :attr:`Thresholds.exploding`
  (``ExplodingTensor``), or below :attr:`Thresholds.vanishing` for a whole window (``VanishingGradient``);
- ``class_collapse``: at an evaluation, one class takes at least :attr:`Thresholds.collapse_share` of the
  predictions though no class has that share of the labels (``ClassImbalance``'s symptom in the predictions);
- ``data_loading_bound``: after a window of steps, waiting for batches takes more than
  :attr:`Thresholds.data_loading_share` of the step time (the profiler's ``LowGPUUtilization`` cause).

Each rule fires at most once. The throughput profile (samples/s, data-loading and compute seconds) is reported
whether or not a rule fires. Plain Python: the local runner imports this module to read the verdict lines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Literal

Action = Literal["off", "warn", "stop"]
ACTIONS: tuple[Action, ...] = ("warn", "stop", "off")
RULES: tuple[str, ...] = (
    "loss_not_decreasing",
    "overfitting",
    "gradient_norm",
    "class_collapse",
    "data_loading_bound",
)
VERDICT_LINE_PREFIX = "training-diagnostic "
"""A verdict on the job's stdout: this prefix, then the verdict as JSON (the local runner records these)."""
REPORT_KEY = "diagnostics"
"""Where ``training_metrics.json`` keeps :meth:`Diagnostics.summary`."""


def option(rule: str) -> str:
    """The training script's argument that sets a rule's action: ``--on-<rule with hyphens>``."""
    return "on-" + rule.replace("_", "-")


def parameter_name(rule: str) -> str:
    """The pipeline parameter that sets a rule's action (``model_build/pipeline_spec.py``): ``Diagnose<Rule>``."""
    return "Diagnose" + "".join(word.capitalize() for word in rule.split("_"))


@dataclass(frozen=True)
class Thresholds:
    window_steps: int = 25
    overfit_patience: int = 1
    exploding: float = 1e3
    vanishing: float = 1e-7
    collapse_share: float = 0.95
    data_loading_share: float = 0.5


@dataclass(frozen=True)
class Verdict:
    rule: str
    verdict: Literal["ok", "warn", "stop"]
    message: str
    step: int | None = None

    def line(self) -> str:
        return VERDICT_LINE_PREFIX + json.dumps(asdict(self))


class TrainingStopped(Exception):
    """A diagnostic rule whose action is ``stop`` fired: the job ends with its verdict as the failure."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(
            f"training stopped at step {verdict.step} by the {verdict.rule} diagnostic: {verdict.message}. Its "
            f"action is 'stop' (pipeline parameter {parameter_name(verdict.rule)}, --{option(verdict.rule)}); "
            "set it to 'warn' to train on, or fix the cause (learning rate, data, epochs)"
        )
        self.verdict = verdict


def parse_line(line: str) -> Verdict | None:
    """The verdict a job printed on ``line``, or None when the line is no verdict."""
    start = line.find(VERDICT_LINE_PREFIX)
    if start < 0:
        return None
    try:
        found = json.loads(line[start + len(VERDICT_LINE_PREFIX) :])
        return Verdict(found["rule"], found["verdict"], found["message"], found.get("step"))
    except (ValueError, KeyError, TypeError):
        return None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


@dataclass
class Diagnostics:
    """The rules' state over one training run: fed step by step and evaluation by evaluation."""

    actions: Mapping[str, Action]
    thresholds: Thresholds = Thresholds()
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    evaluations: list[tuple[float, float]] = field(default_factory=list)
    """(training loss, validation loss) at each evaluation."""
    samples: int = 0
    data_seconds: float = 0.0
    compute_seconds: float = 0.0
    fired: dict[str, Verdict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.actions) - set(RULES))
        bad = {rule: action for rule, action in self.actions.items() if action not in ACTIONS}
        if unknown or bad:
            raise ValueError(
                f"training diagnostics: unknown rules {unknown} or actions {bad}; rules are {', '.join(RULES)}, "
                f"actions {', '.join(ACTIONS)}"
            )

    def _fire(self, rule: str, message: str, step: int | None) -> list[Verdict]:
        action = self.actions.get(rule, "warn")
        if action == "off" or rule in self.fired:
            return []
        verdict = Verdict(rule, "stop" if action == "stop" else "warn", message, step)
        self.fired[rule] = verdict
        return [verdict]

    def observe_step(
        self,
        step: int,
        loss: float,
        grad_norm: float | None = None,
        samples: int = 0,
        data_seconds: float = 0.0,
        compute_seconds: float = 0.0,
    ) -> list[Verdict]:
        """One optimizer step; returns the verdicts that fired on it."""
        found: list[Verdict] = []
        window = self.thresholds.window_steps
        self.losses.append(loss)
        self.samples += samples
        self.data_seconds += data_seconds
        self.compute_seconds += compute_seconds
        if not math.isfinite(loss):
            found += self._fire("loss_not_decreasing", f"the training loss is {loss} at step {step}", step)
        elif len(self.losses) >= 2 * window and len(self.losses) % window == 0:
            before, last = _mean(self.losses[-2 * window : -window]), _mean(self.losses[-window:])
            if not last < before:
                found += self._fire(
                    "loss_not_decreasing",
                    f"the mean training loss of steps {step - window + 1}-{step} ({last:.4f}) is not below "
                    f"that of the {window} steps before ({before:.4f})",
                    step,
                )
        if grad_norm is not None:
            self.grad_norms.append(grad_norm)
            if not math.isfinite(grad_norm) or grad_norm > self.thresholds.exploding:
                found += self._fire(
                    "gradient_norm",
                    f"exploding gradients: the gradient norm is {grad_norm:.4g} at step {step} "
                    f"(above {self.thresholds.exploding:g} before clipping)",
                    step,
                )
            elif (
                len(self.grad_norms) >= window and max(self.grad_norms[-window:]) < self.thresholds.vanishing
            ):
                found += self._fire(
                    "gradient_norm",
                    f"vanishing gradients: the gradient norm stayed below {self.thresholds.vanishing:g} for "
                    f"{window} steps (to step {step}): the weights no longer change",
                    step,
                )
        steps = len(self.losses)
        spent = self.data_seconds + self.compute_seconds
        if steps >= window and spent > 0 and self.data_seconds / spent > self.thresholds.data_loading_share:
            found += self._fire(
                "data_loading_bound",
                f"waiting for batches took {self.data_seconds / spent:.0%} of the step time over {steps} steps "
                "(more DataLoader workers or lighter collation would feed the device)",
                step,
            )
        return found

    def observe_evaluation(
        self,
        step: int,
        train_loss: float,
        val_loss: float,
        predicted_top_share: float | None = None,
        label_top_share: float | None = None,
    ) -> list[Verdict]:
        """One evaluation (an epoch's end); returns the verdicts that fired on it."""
        found: list[Verdict] = []
        self.evaluations.append((train_loss, val_loss))
        patience = self.thresholds.overfit_patience
        if len(self.evaluations) > patience:
            recent = self.evaluations[-patience - 1 :]
            pairs = list(pairwise(recent))
            if all(after[1] > before[1] and after[0] < before[0] for before, after in pairs):
                found += self._fire(
                    "overfitting",
                    f"the validation loss rose from {recent[0][1]:.4f} to {recent[-1][1]:.4f} while the training "
                    f"loss fell from {recent[0][0]:.4f} to {recent[-1][0]:.4f} (to step {step})",
                    step,
                )
        share = self.thresholds.collapse_share
        if (
            predicted_top_share is not None
            and predicted_top_share >= share
            and (label_top_share is None or label_top_share < share)
        ):
            found += self._fire(
                "class_collapse",
                f"{predicted_top_share:.0%} of the validation predictions are one class (the labels' largest "
                f"class is {label_top_share or 0:.0%}) at step {step}",
                step,
            )
        return found

    def stop(self) -> Verdict | None:
        """The first verdict whose action is to stop the training, if any."""
        return next((verdict for verdict in self.fired.values() if verdict.verdict == "stop"), None)

    def profile(self) -> dict[str, float]:
        spent = self.data_seconds + self.compute_seconds
        return {
            "steps": float(len(self.losses)),
            "samples": float(self.samples),
            "samples_per_second": self.samples / spent if spent else 0.0,
            "data_loading_seconds": round(self.data_seconds, 4),
            "compute_seconds": round(self.compute_seconds, 4),
            "data_loading_share": self.data_seconds / spent if spent else 0.0,
        }

    def summary(self) -> dict[str, Any]:
        """Every rule's verdict (``ok`` where it did not fire, ``off`` where it was off) and the profile."""
        verdicts = []
        for rule in RULES:
            if rule in self.fired:
                verdicts.append(asdict(self.fired[rule]))
            else:
                off = self.actions.get(rule, "warn") == "off"
                verdicts.append(
                    {"rule": rule, "verdict": "off" if off else "ok", "message": "", "step": None}
                )
        return {"verdicts": verdicts, "profile": self.profile(), "thresholds": asdict(self.thresholds)}


def top_share(counts: Sequence[int]) -> float | None:
    total = sum(counts)
    return max(counts) / total if total else None
