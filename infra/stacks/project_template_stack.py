"""The SageMaker project template: the product (one template per project), its portfolio and launch role.

A platform team deploys this stack once per account and region; data scientists then create any number of
projects from Studio or with ``aws sagemaker create-project``, each one a provisioned copy of
:class:`ProjectProductStack` with its own names.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_servicecatalog as servicecatalog
from constructs import Construct

from infra.constructs.product_launch_role import ProductLaunchRole, ProductLaunchRoleProps, resource_types
from infra.constructs.project_portfolio import ProjectPortfolio, ProjectPortfolioProps
from infra.project_template_settings import ProjectTemplateSettings
from infra.settings import InfraSettings
from infra.stacks.project_product_stack import ProjectProductStack
from model_build.config import ProjectConfig


class ProjectTemplateStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ProjectConfig,
        settings: InfraSettings,
        template_settings: ProjectTemplateSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.product_stack = ProjectProductStack(
            self,
            "ProjectProduct",
            settings=settings,
            region=config.region,
            description="MLOps template as a SageMaker project: data, feature store, registry, build and deploy",
        )
        self.launch_role = ProductLaunchRole(
            self,
            "LaunchRole",
            ProductLaunchRoleProps(
                resource_types=tuple(resource_types(self.product_stack)),
                # The product's template is a file asset in the CDK bootstrap bucket (any qualifier).
                template_bucket_arn=f"arn:{Aws.PARTITION}:s3:::cdk-*-assets-{Aws.ACCOUNT_ID}-{Aws.REGION}",
                code_connection_arn=settings.code_connection_arn
                if settings.source_type == "github"
                else None,
            ),
        ).role
        self.portfolio = ProjectPortfolio(
            self,
            "ProjectPortfolio",
            ProjectPortfolioProps(
                portfolio_name=config.project_template_portfolio_name,
                product_name=config.project_template_product_name,
                product_version=template_settings.product_version,
                provider_name=template_settings.provider_name,
                template=servicecatalog.CloudFormationTemplate.from_product_stack(self.product_stack),
                launch_role=self.launch_role,
                principals=tuple(
                    iam.Role.from_role_arn(self, f"Principal{index}", arn, mutable=False)
                    for index, arn in enumerate(template_settings.execution_role_arns)
                ),
            ),
        )
        CfnOutput(self, "PortfolioId", value=self.portfolio.portfolio.portfolio_id)
        CfnOutput(self, "ProductId", value=self.portfolio.product.product_id)
        product = self.portfolio.product.node.default_child
        assert isinstance(product, servicecatalog.CfnCloudFormationProduct)
        CfnOutput(self, "ProvisioningArtifactIds", value=product.attr_provisioning_artifact_ids)
        CfnOutput(self, "LaunchRoleArn", value=self.launch_role.role_arn)
