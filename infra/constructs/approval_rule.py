"""The EventBridge rule that starts a deploy only when a model version of this project is approved."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_events as events
from constructs import Construct

MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"


def approved_model_pattern(model_package_group_name: str) -> events.EventPattern:
    """Matches ``Approved`` only, and only in this group.

    SageMaker sends a state-change event for every update of a model package (registration, rejection, a
    changed description); a rule on all of them, as in the AWS built-in project template, deploys on events
    that approve nothing.
    """
    return events.EventPattern(
        source=["aws.sagemaker"],
        detail_type=[MODEL_PACKAGE_STATE_CHANGE],
        detail={"ModelPackageGroupName": [model_package_group_name], "ModelApprovalStatus": ["Approved"]},
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
            description=f"Starts the deploy when a version in {props.model_package_group_name} is approved",
            event_pattern=approved_model_pattern(props.model_package_group_name),
            targets=[props.target],
        )
