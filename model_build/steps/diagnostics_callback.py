"""The training diagnostics (:mod:`diagnostics`) as a ``transformers`` ``TrainerCallback``.

The callback times each step (the batch is fetched before ``on_step_begin``: the gap since the previous step's
end is data loading, ``on_step_begin`` to ``on_step_end`` is compute), reads the step's loss and pre-clipping
gradient norm from the trainer (:class:`StepObservations`, which ``trainer_setup.WeightedLossTrainer`` fills in), and
each evaluation's losses and prediction shares from its metrics. A verdict is printed as one line on stdout
(rank 0), logged to MLflow as a tag (:mod:`tracking`), and with the action ``stop`` ends the training after the
step (``control.should_training_stop``). Under ``torchrun`` every rank sees its own shard's losses, so the ranks
agree on stopping through one all-reduced flag per step: none keeps training while the others wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from diagnostics import Diagnostics, Verdict
from tracking import Tracker, log_diagnostics
from transformers import TrainerCallback

PREDICTED_TOP_SHARE = "predicted_top_share"
LABEL_TOP_SHARE = "label_top_share"
"""Keys ``trainer_setup.compute_metrics`` adds to each evaluation (``eval_`` prefixed in the callback's metrics)."""


@dataclass
class StepObservations:
    """What the trainer saw of the last optimizer step (set by the trainer, read by the callback)."""

    loss: Any = None
    """The step's loss (a tensor: read once per step, at its end)."""
    grad_norm: float | None = None
    samples: int = 0


class DiagnosticsCallback(TrainerCallback):
    def __init__(self, diagnostics: Diagnostics, observations: StepObservations, tracker: Tracker) -> None:
        self.diagnostics, self.observations, self.tracker = diagnostics, observations, tracker
        self._step_started = self._last_step_ended = 0.0
        self.stopped: Verdict | None = None
        """The verdict that stopped the training (on a rank whose own rules did not fire: a stand-in)."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_step_ended = time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        ended = time.perf_counter()
        loss = self.observations.loss
        found = self.diagnostics.observe_step(
            state.global_step,
            float(loss.item() if hasattr(loss, "item") else loss if loss is not None else float("nan")),
            self.observations.grad_norm,
            self.observations.samples,
            data_seconds=self._step_started - self._last_step_ended,
            compute_seconds=ended - self._step_started,
        )
        self._report(found, state)
        if _any_rank(self.diagnostics.stop() is not None, args.world_size):
            self._stop(control)
        self._last_step_ended = time.perf_counter()

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        metrics = metrics or {}
        train_losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        found = self.diagnostics.observe_evaluation(
            state.global_step,
            train_losses[-1] if train_losses else float("nan"),
            metrics.get("eval_loss", float("nan")),
            metrics.get(f"eval_{PREDICTED_TOP_SHARE}"),
            metrics.get(f"eval_{LABEL_TOP_SHARE}"),
        )
        self._report(found, state)
        if self.diagnostics.stop() is not None:  # evaluations are gathered: every rank decides alike
            self._stop(control)
        # Evaluation time is neither data loading nor a training step's compute.
        self._last_step_ended = time.perf_counter()

    def _stop(self, control: Any) -> None:
        control.should_training_stop = True
        self.stopped = self.diagnostics.stop() or Verdict(
            "diagnostics", "stop", "a rule with the action 'stop' fired on another process"
        )

    def _report(self, found: list[Verdict], state: Any) -> None:
        if not found or not state.is_world_process_zero:
            return
        for verdict in found:
            print(verdict.line(), flush=True)
        log_diagnostics(self.tracker, {"verdicts": [vars(verdict) for verdict in found]})


def _any_rank(flag: bool, world_size: int) -> bool:
    if world_size <= 1:
        return flag
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
