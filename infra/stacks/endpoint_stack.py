"""Endpoint: one stage's SageMaker endpoint serving one approved model package.

Not part of the CDK app that ``cdk deploy`` deploys: the deploy pipeline's render action synthesizes this stack
per stage with the resolved package (``python -m model_deploy render``), without bootstrap resources, and its
deploy action puts the template live through CloudFormation (``python -m model_deploy deploy``).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.constructs.drift_monitor import DriftMonitorProps, DriftMonitorSchedule
from infra.constructs.endpoint import ModelEndpoint, ModelEndpointProps
from infra.constructs.human_loop_schedule import HumanLoopProps, HumanLoopSchedule


class EndpointStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: ModelEndpointProps,
        monitor: DriftMonitorProps | None = None,
        human_loops: HumanLoopProps | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.endpoint = ModelEndpoint(self, "ModelEndpoint", endpoint)
        CfnOutput(self, "EndpointName", value=endpoint.endpoint_name)
        CfnOutput(self, "ModelPackageArn", value=endpoint.model_package_arn)
        CfnOutput(self, "VariantName", value=endpoint.variant_name)
        self.monitor = DriftMonitorSchedule(self, "DriftMonitor", monitor) if monitor is not None else None
        self.human_loops = (
            HumanLoopSchedule(self, "HumanLoops", human_loops) if human_loops is not None else None
        )
