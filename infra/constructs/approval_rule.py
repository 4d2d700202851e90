"""The EventBridge rule that starts a rollout when a model version of this project is approved or rejected."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_events as events
from constructs import Construct

MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
ROLLOUT_STATUSES = ("Approved", "Rejected")
"""The statuses whose changes can change what should serve: an approval rolls the version out; rejecting the
version that serves rolls back to the newest version still approved (both through staging, the smoke test and
the manual gate). The render action decides from the registry, never from the event, so a rejection of a
version that does not serve, or a duplicate event, stops at render with "nothing to deploy"."""


def rollout_pattern(model_package_group_name: str) -> events.EventPattern:
    """Matches ``Approved`` and ``Rejected`` only, and only in this group.

    SageMaker sends a state-change event for every update of a model package (registration as
    ``PendingManualApproval``, a changed description); a rule on all of them, as in the AWS built-in project
    template, starts a deploy on every registration.
    """
    return events.EventPattern(
        source=["aws.sagemaker"],
        detail_type=[MODEL_PACKAGE_STATE_CHANGE],
        detail={
            "ModelPackageGroupName": [model_package_group_name],
            "ModelApprovalStatus": list(ROLLOUT_STATUSES),
        },
    )


@dataclass(frozen=True)
class ApprovalRuleProps:
    rule_name: str
    model_package_group_name: str
    target: events.IRuleTarget


class ModelApprovedRule(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ApprovalRuleProps) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "Rule",
            rule_name=props.rule_name,
            description=f"Starts the rollout when a version in {props.model_package_group_name} is approved or rejected",
            event_pattern=rollout_pattern(props.model_package_group_name),
            targets=[props.target],
        )
