"""The deploy rule's synthesized pattern against example SageMaker events, with moto's EventBridge matcher.

``moto.events.models.EventPattern`` is what moto's EventBridge runs for every rule when events are put on a
bus (``EventPattern.load`` also validates the pattern as ``PutRule`` does); nothing here re-implements
matching. (Delivering through moto's ``put_events`` to a target would only add the optional ``jsonpath-ng``
dependency of its input transformer around the same call.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from tests.infra.conftest import SynthesizedApp

EVENTS = Path(__file__).parent / "events"
EXPECTED_MATCHES = {
    "approved.json": True,
    "pending_manual_approval.json": False,
    # A rejection starts a rollout too: when the rejected version serves, the newest still approved replaces it.
    "rejected.json": True,
    "other_group_approved.json": False,
}


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _deploy_rule_pattern(app: SynthesizedApp) -> EventPattern:
    (rule,) = [
        rule
        for rule in app.template("deploy").find_resources("AWS::Events::Rule").values()
        if "aws.sagemaker" in json.dumps(rule["Properties"].get("EventPattern", {}))
    ]
    return EventPattern.load(json.dumps(rule["Properties"]["EventPattern"]))


def test_the_examples_are_state_changes_of_this_projects_group(default_app: SynthesizedApp) -> None:
    group = default_app.config.model_package_group_name
    for name in EXPECTED_MATCHES:
        event = _event(name)
        assert (event["source"], event["detail-type"]) == (
            "aws.sagemaker",
            "SageMaker Model Package State Change",
        )
        expected_group = "churn-model-dev-models" if name.startswith("other_group") else group
        assert event["detail"]["ModelPackageGroupName"] == expected_group
        assert event["detail"]["ModelPackageArn"] == event["resources"][0]


@pytest.mark.parametrize(("name", "matches"), EXPECTED_MATCHES.items())
def test_only_an_approval_or_rejection_in_this_group_starts_the_deploy(
    any_app: SynthesizedApp, name: str, matches: bool
) -> None:
    assert _deploy_rule_pattern(any_app).matches_event(_event(name)) is matches


def test_the_built_in_templates_pattern_would_deploy_on_every_change(default_app: SynthesizedApp) -> None:
    """The AWS built-in project template matches every state change of its group, so a registration deploys.

    This is what the narrower pattern prevents, and it shows the matcher tells the two apart.
    """
    built_in = EventPattern.load(
        json.dumps(
            {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {"ModelPackageGroupName": [default_app.config.model_package_group_name]},
            }
        )
    )
    matched = {name for name in EXPECTED_MATCHES if built_in.matches_event(_event(name))}
    assert matched == {"approved.json", "pending_manual_approval.json", "rejected.json"}
    ours = _deploy_rule_pattern(default_app)
    assert {name for name in matched if not ours.matches_event(_event(name))} == {
        "pending_manual_approval.json"
    }
