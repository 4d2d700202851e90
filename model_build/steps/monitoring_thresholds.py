"""The limits a window of captured traffic is held to, defined once.

The stage files (``model_deploy/stages/<stage>.json``, key ``monitoring.thresholds``) set them, checked by
``model_deploy.stage_config``; the monitoring job (``monitor.py``) receives them as JSON and compares. Pure
standard library, so that both the CLI and the job container can import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

CheckKind = Literal["drift", "data_quality"]


@dataclass(frozen=True)
class DriftThresholds:
    """Each ``max_*`` is the largest value that still passes; ``min_reviews`` the smallest window judged.

    PSI: below 0.1 is read as no shift, above 0.25 as a large one. Jensen-Shannon distance: 0 to 1 (base 2).
    ``*_increase`` and ``*_drop`` are differences from the baseline's share (the window minus the baseline,
    or the baseline minus the window), so a model whose test split already truncated 5% is not flagged for
    truncating 5% in production.
    """

    max_length_psi: float = 0.25
    max_length_js: float = 0.2
    max_prediction_psi: float = 0.25
    max_prediction_js: float = 0.2
    max_truncated_share_increase: float = 0.1
    max_unseen_token_share_increase: float = 0.05
    max_confidence_drop: float = 0.15
    max_empty_request_share: float = 0.05
    max_non_utf8_request_share: float = 0.01
    max_malformed_line_share: float = 0.05
    min_reviews: int = 30
    """Fewer reviews than this in a window: the statistics are reported, but no verdict of drift is drawn."""

    def check(self) -> list[str]:
        problems = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "min_reviews":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    problems.append(f"min_reviews must be an integer of at least 1, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                problems.append(f"{f.name} must be a number of at least 0, not {value!r}")
            elif f.name.endswith(("_share", "_js", "_increase", "_drop")) and value > 1:
                problems.append(f"{f.name} is a share or a distance within 0-1, not {value!r}")
        return problems

    @classmethod
    def from_json(cls, document: Any) -> DriftThresholds:
        """From the JSON the job receives; unknown keys are refused (a misspelled limit applies nothing)."""
        if not isinstance(document, dict):
            raise ValueError(f"the thresholds must be a JSON object, not {type(document).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(document) - names)
        if unknown:
            raise ValueError(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        thresholds = cls(**document)
        problems = thresholds.check()
        if problems:
            raise ValueError("; ".join(problems))
        return thresholds

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHECK_KINDS: dict[str, CheckKind] = {
    "max_length_psi": "drift",
    "max_length_js": "drift",
    "max_prediction_psi": "drift",
    "max_prediction_js": "drift",
    "max_truncated_share_increase": "drift",
    "max_unseen_token_share_increase": "drift",
    "max_confidence_drop": "drift",
    "max_empty_request_share": "data_quality",
    "max_non_utf8_request_share": "data_quality",
    "max_malformed_line_share": "data_quality",
}
"""Drift (the traffic moved away from what the model learned: retraining may help) or data quality (clients
send what the endpoint cannot read: retraining cannot help)."""
