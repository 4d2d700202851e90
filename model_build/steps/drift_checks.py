"""The drift monitor's checks: a window of traffic against its model's baseline, each check with its value and
its threshold, and the verdict they add up to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drift import (
    Baseline,
    TextProfile,
    jensen_shannon_distance,
    population_stability_index,
)
from monitoring_thresholds import CHECK_KINDS, DriftThresholds


# ------------------------------------------------------------------------------------------------ checks
@dataclass
class Traffic:
    """What the window's lines held, counted; the profile of its reviews is beside it."""

    capture_files: int = 0
    lines: int = 0
    outside_window: int = 0
    requests: int = 0
    empty_requests: int = 0
    non_utf8_requests: int = 0
    refused_answers: int = 0
    reviews: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    reviews_by_version: Counter[str] = field(default_factory=Counter)
    """Reviews per model version that answered them (where the captures say: locally, always)."""

    @property
    def malformed_lines(self) -> int:
        return sum(self.malformed.values())

    def judged_lines(self) -> int:
        """Lines of the window: the requests and the malformed lines (whose time may be unknown)."""
        return self.requests + self.malformed_lines

    def as_json(self) -> dict[str, Any]:
        return {
            "capture_files": self.capture_files,
            "lines_read": self.lines,
            "lines_outside_window": self.outside_window,
            "requests": self.requests,
            "reviews": self.reviews,
            "empty_requests": self.empty_requests,
            "non_utf8_requests": self.non_utf8_requests,
            "refused_answers": self.refused_answers,
            "malformed_lines": self.malformed_lines,
            "malformed_by_reason": dict(sorted(self.malformed.items())),
            "malformed_examples": self.examples,
            "reviews_by_version": dict(sorted(self.reviews_by_version.items())),
        }


@dataclass(frozen=True)
class Check:
    threshold: str
    """The :class:`DriftThresholds` field it is held to (its name says the direction: max_...)."""
    feature_name: str
    statistic: str
    value: float | None
    limit: float
    baseline_value: float | None = None
    window_value: float | None = None

    @property
    def kind(self) -> str:
        return CHECK_KINDS[self.threshold]

    @property
    def passed(self) -> bool | None:
        """None: not measured (nothing to compute it from), which is not a pass."""
        return None if self.value is None else self.value <= self.limit

    def as_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "kind": self.kind,
            "feature_name": self.feature_name,
            "statistic": self.statistic,
            "value": self.value,
            "limit": self.limit,
            "baseline_value": self.baseline_value,
            "window_value": self.window_value,
            "passed": self.passed,
        }

    def violation(self) -> dict[str, str]:
        """One entry of Model Monitor's ``constraint_violations.json``."""
        check_type = {
            "max_empty_request_share": "completeness_check",
            "max_non_utf8_request_share": "data_type_check",
            "max_malformed_line_share": "data_type_check",
        }.get(self.threshold, "baseline_drift_check")
        compared = (
            f" (baseline {format_value(self.baseline_value)}, window {format_value(self.window_value)})"
            if self.baseline_value is not None or self.window_value is not None
            else ""
        )
        return {
            "feature_name": self.feature_name,
            "constraint_check_type": check_type,
            "description": f"{self.statistic} is {format_value(self.value)}, above {self.threshold} {format_value(self.limit)}"
            + compared,
        }


def format_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _distance_checks(
    thresholds: tuple[str, str],
    feature_name: str,
    what: str,
    base_counts: list[int],
    window_counts: list[int] | None,
    limits: tuple[float, float],
) -> list[Check]:
    """The PSI and the Jensen-Shannon distance of one distribution; ``window_counts`` None: nothing to measure."""
    if window_counts is None:
        psi = js = None
    else:
        psi = population_stability_index(base_counts, window_counts)
        js = jensen_shannon_distance(base_counts, window_counts)
    return [
        Check(
            thresholds[0],
            feature_name,
            f"population stability index of {what}",
            psi,
            limits[0],
        ),
        Check(
            thresholds[1],
            feature_name,
            f"Jensen-Shannon distance of {what}",
            js,
            limits[1],
        ),
    ]


def compare(
    baseline: Baseline, traffic: Traffic, window: TextProfile, limits: DriftThresholds
) -> list[Check]:
    """Every check of the window against the baseline; a statistic without data is measured as None."""
    base = baseline.profile
    return [
        *_distance_checks(
            ("max_length_psi", "max_length_js"),
            "review_length_tokens",
            "review lengths",
            base.length_counts,
            window.length_counts if window.reviews > 0 else None,
            (limits.max_length_psi, limits.max_length_js),
        ),
        *_distance_checks(
            ("max_prediction_psi", "max_prediction_js"),
            "predicted_sentiment",
            "predicted classes",
            list(base.predicted_counts.values()),
            list(window.predicted_counts.values()) if window.predictions > 0 else None,
            (limits.max_prediction_psi, limits.max_prediction_js),
        ),
        Check(
            "max_truncated_share_increase",
            "truncated_reviews",
            "increase of the share of reviews longer than the model reads",
            _difference(window.truncated_share, base.truncated_share),
            limits.max_truncated_share_increase,
            base.truncated_share,
            window.truncated_share,
        ),
        Check(
            "max_unseen_token_share_increase",
            "unseen_tokens",
            "increase of the share of tokens the train split never held",
            _difference(window.unseen_token_share, base.unseen_token_share),
            limits.max_unseen_token_share_increase,
            base.unseen_token_share,
            window.unseen_token_share,
        ),
        Check(
            "max_confidence_drop",
            "top_class_probability",
            "drop of the mean top-class probability",
            _difference(base.mean_top_probability, window.mean_top_probability),
            limits.max_confidence_drop,
            base.mean_top_probability,
            window.mean_top_probability,
        ),
        Check(
            "max_empty_request_share",
            "empty_requests",
            "share of requests without a review",
            _share(traffic.empty_requests, traffic.requests),
            limits.max_empty_request_share,
            window_value=_share(traffic.empty_requests, traffic.requests),
        ),
        Check(
            "max_non_utf8_request_share",
            "non_utf8_requests",
            "share of requests that are not UTF-8 text",
            _share(traffic.non_utf8_requests, traffic.requests),
            limits.max_non_utf8_request_share,
            window_value=_share(traffic.non_utf8_requests, traffic.requests),
        ),
        Check(
            "max_malformed_line_share",
            "capture_lines",
            "share of capture lines that cannot be read",
            _share(traffic.malformed_lines, traffic.judged_lines()),
            limits.max_malformed_line_share,
            window_value=_share(traffic.malformed_lines, traffic.judged_lines()),
        ),
    ]


def verdict(traffic: Traffic, window: TextProfile, checks: Sequence[Check], limits: DriftThresholds) -> str:
    """Drift wins over data quality, which wins over too little traffic; no lines at all is no traffic."""
    if traffic.judged_lines() == 0:
        return "no_traffic"
    enough = window.reviews >= limits.min_reviews
    if enough and any(c.passed is False for c in checks if c.kind == "drift"):
        return "drift"
    if any(c.passed is False for c in checks if c.kind == "data_quality"):
        return "data_quality"
    return "no_drift" if enough else "insufficient_traffic"


def violations(checks: Sequence[Check], judged_drift: bool) -> list[dict[str, str]]:
    """The failed checks; drift checks only when the window had enough reviews to judge them."""
    return [c.violation() for c in checks if c.passed is False and (judged_drift or c.kind != "drift")]
