"""The worker task UI of a stage's human review (Amazon A2I): ``AWS::SageMaker::HumanTaskUi``.

It holds :data:`model_deploy.aws.human_review.TASK_TEMPLATE` (3-class sentiment). The flow definition that uses
it has no CloudFormation resource; it is created with ``CreateFlowDefinition``
(:func:`model_deploy.aws.human_review.flow_definition_request`) for the private workteam whose ARN is a
setting. Not yet wired into the endpoint stack (see docs/reviewers.md, "On AWS").
"""

from __future__ import annotations

from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from model_deploy.aws.human_review import TASK_TEMPLATE


def human_task_ui_name(prefix: str, stage: str) -> str:
    """``<project>-<env>-<stage>-sentiment-review``: one UI per stage, named so the flow definition finds it."""
    return f"{prefix}-{stage}-sentiment-review"


class HumanTaskUi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, stage: str) -> None:
        super().__init__(scope, construct_id)
        self.name = human_task_ui_name(prefix, stage)
        self.resource = sagemaker.CfnHumanTaskUi(
            self,
            "Resource",
            human_task_ui_name=self.name,
            ui_template=sagemaker.CfnHumanTaskUi.UiTemplateProperty(content=TASK_TEMPLATE),
        )
        self.arn = self.resource.attr_human_task_ui_arn
