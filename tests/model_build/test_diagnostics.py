"""The training diagnostics (SageMaker Debugger's rules, run inside the job): each rule fed the numbers that
should make it fire, and the ones that should not; the callback stopping ``Trainer`` when a rule's action is
``stop``; and the pipeline parameters that set the actions, declared once for both runners."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
from diagnostics import (
    RULES,
    Diagnostics,
    Thresholds,
    TrainingStopped,
    Verdict,
    option,
    parameter_name,
    parse_line,
)
from diagnostics_callback import (
    LABEL_TOP_SHARE,
    PREDICTED_TOP_SHARE,
    DiagnosticsCallback,
    StepObservations,
)
from tracking import Tracker
from transformers import TrainerControl

from model_build.pipeline_spec import PIPELINE, TRAIN

WINDOW = Thresholds(window_steps=5)


def feed_steps(diagnostics: Diagnostics, losses: list[float], **step: Any) -> list[Verdict]:
    fired: list[Verdict] = []
    for number, loss in enumerate(losses, start=1):
        fired += diagnostics.observe_step(number, loss, **step)
    return fired


def test_a_diverging_loss_fires_loss_not_decreasing() -> None:
    diagnostics = Diagnostics({}, WINDOW)
    diverging = [1.0 + 0.05 * step for step in range(20)]  # rising: the mean of each window above the last's
    fired = feed_steps(diagnostics, diverging, grad_norm=1.0)
    assert [verdict.rule for verdict in fired] == ["loss_not_decreasing"]
    assert fired[0].verdict == "warn" and fired[0].step == 10  # at the end of the second window
    assert "not below" in fired[0].message


def test_a_falling_loss_fires_nothing_and_the_summary_says_ok() -> None:
    diagnostics = Diagnostics({}, WINDOW)
    assert feed_steps(diagnostics, [2.0 * 0.95**step for step in range(40)], grad_norm=0.5) == []
    summary = diagnostics.summary()
    assert {entry["rule"]: entry["verdict"] for entry in summary["verdicts"]} == dict.fromkeys(RULES, "ok")


def test_a_nan_loss_fires_at_once() -> None:
    fired = Diagnostics({}, WINDOW).observe_step(3, math.nan)
    assert [(verdict.rule, verdict.step) for verdict in fired] == [("loss_not_decreasing", 3)]


def test_an_overfitting_run_fires_overfitting() -> None:
    diagnostics = Diagnostics({}, WINDOW)
    # (train loss, validation loss) per epoch: training keeps falling, validation turns up after epoch 2.
    curve = [(1.0, 0.9), (0.7, 0.8), (0.4, 0.85), (0.2, 0.95)]
    fired = [
        v
        for step, (train, val) in enumerate(curve, 1)
        for v in diagnostics.observe_evaluation(step, train, val)
    ]
    assert [(verdict.rule, verdict.step) for verdict in fired] == [("overfitting", 3)]
    assert "rose from 0.8000 to 0.8500" in fired[0].message


def test_both_losses_falling_is_no_overfitting() -> None:
    diagnostics = Diagnostics({}, Thresholds(overfit_patience=1))
    assert diagnostics.observe_evaluation(1, 1.0, 0.9) == diagnostics.observe_evaluation(2, 0.8, 0.7) == []


def test_exploding_and_vanishing_gradient_norms() -> None:
    exploding = Diagnostics({}, WINDOW)
    fired = feed_steps(exploding, [1.0, 0.9], grad_norm=5e3)
    assert [v.rule for v in fired] == ["gradient_norm"] and "exploding" in fired[0].message
    vanishing = Diagnostics({}, WINDOW)
    fired = feed_steps(vanishing, [1.0 - 0.01 * step for step in range(5)], grad_norm=1e-9)
    assert [(v.rule, v.step) for v in fired] == [("gradient_norm", 5)] and "vanishing" in fired[0].message


def test_collapse_onto_one_class() -> None:
    fired = Diagnostics({}).observe_evaluation(4, 1.0, 1.1, predicted_top_share=0.98, label_top_share=0.34)
    assert [v.rule for v in fired] == ["class_collapse"]
    # Labels that are all one class: predicting it is no collapse.
    assert Diagnostics({}).observe_evaluation(4, 1.0, 1.1, predicted_top_share=1.0, label_top_share=1.0) == []


def test_waiting_for_data_most_of_the_step_time() -> None:
    fired = feed_steps(
        Diagnostics({}, WINDOW),
        [1.0 - 0.01 * s for s in range(5)],
        samples=8,
        data_seconds=0.3,
        compute_seconds=0.1,
    )
    assert [v.rule for v in fired] == ["data_loading_bound"]


def test_the_profile_reports_throughput_and_the_time_split() -> None:
    diagnostics = Diagnostics({}, WINDOW)
    feed_steps(diagnostics, [1.0, 0.9, 0.8, 0.7], samples=16, data_seconds=0.25, compute_seconds=0.75)
    profile = diagnostics.profile()
    assert profile["samples"] == 64 and profile["steps"] == 4
    assert profile["samples_per_second"] == pytest.approx(16.0)
    assert profile["data_loading_share"] == pytest.approx(0.25)


def test_off_skips_a_rule_and_stop_asks_to_stop() -> None:
    off = Diagnostics({"loss_not_decreasing": "off"}, WINDOW)
    assert feed_steps(off, [math.nan]) == []
    assert {e["rule"]: e["verdict"] for e in off.summary()["verdicts"]}["loss_not_decreasing"] == "off"
    stop = Diagnostics({"overfitting": "stop"}, WINDOW)
    stop.observe_evaluation(1, 1.0, 0.5)
    (verdict,) = stop.observe_evaluation(2, 0.5, 0.9)
    assert verdict.verdict == "stop" and stop.stop() == verdict


def test_an_unknown_rule_or_action_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown rules \['loss'\].*actions \{'overfitting': 'halt'\}"):
        Diagnostics({"loss": "warn", "overfitting": "halt"})  # type: ignore[dict-item]


def test_the_stop_message_names_the_rule_the_parameter_and_the_way_out() -> None:
    message = str(TrainingStopped(Verdict("overfitting", "stop", "the validation loss rose", 40)))
    assert "step 40" in message and "DiagnoseOverfitting" in message and "--on-overfitting" in message
    assert "'warn'" in message


def test_a_verdict_line_round_trips_and_other_lines_are_no_verdicts() -> None:
    verdict = Verdict("gradient_norm", "warn", "exploding gradients: 5e3", 7)
    assert parse_line("2026-12-06 rank0 " + verdict.line()) == verdict
    assert parse_line("epoch=1 train_loss=0.5 val_loss=0.6 val_acc=0.7 val_f1_macro=0.6") is None
    assert parse_line("training-diagnostic {not json") is None


# ------------------------------------------------------------------------------------------ the callback
def trainer_state(step: int, log_history: list[dict[str, float]] | None = None) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, is_world_process_zero=True, log_history=log_history or [])


def test_the_callback_stops_training_on_a_diverging_loss(capsys: pytest.CaptureFixture[str]) -> None:
    observations = StepObservations()
    # No real steps here: their timing means nothing, so the data-loading rule is off.
    diagnostics = Diagnostics({"loss_not_decreasing": "stop", "data_loading_bound": "off"}, WINDOW)
    callback = DiagnosticsCallback(diagnostics, observations, Tracker(reason="no MLflow in this test"))
    args, control = SimpleNamespace(world_size=1), TrainerControl()
    callback.on_train_begin(args, trainer_state(0), control)
    for step in range(1, 21):
        callback.on_step_begin(args, trainer_state(step), control)
        observations.loss, observations.grad_norm, observations.samples = 1.0 + 0.1 * step, 1.0, 8
        callback.on_step_end(args, trainer_state(step), control)
        if control.should_training_stop:
            break
    assert control.should_training_stop and step == 10
    assert callback.stopped is not None and callback.stopped.rule == "loss_not_decreasing"
    printed = [parse_line(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [callback.stopped]


def test_the_callback_judges_each_evaluation() -> None:
    callback = DiagnosticsCallback(Diagnostics({}), StepObservations(), Tracker(reason="off"))
    args, control = SimpleNamespace(world_size=1), TrainerControl()
    history = [{"loss": 0.9, "step": 10}, {"eval_loss": 0.8, "step": 10}]
    callback.on_evaluate(args, trainer_state(10, history), control, metrics={"eval_loss": 0.8})
    history += [{"loss": 0.5, "step": 20}]
    metrics = {"eval_loss": 0.95, f"eval_{PREDICTED_TOP_SHARE}": 1.0, f"eval_{LABEL_TOP_SHARE}": 0.34}
    callback.on_evaluate(args, trainer_state(20, history), control, metrics=metrics)
    assert sorted(callback.diagnostics.fired) == ["class_collapse", "overfitting"]
    assert not control.should_training_stop  # warn only: the default


# ------------------------------------------------------------------------------------------ the parameters
def test_each_rule_has_one_pipeline_parameter_passed_to_training() -> None:
    step = PIPELINE.step(TRAIN)
    for rule in RULES:
        parameter = PIPELINE.parameter(parameter_name(rule))
        assert parameter.choices == ("warn", "stop", "off") and parameter.default == "warn"
        assert step.hyperparameters[option(rule)].name == parameter.name  # type: ignore[union-attr]
