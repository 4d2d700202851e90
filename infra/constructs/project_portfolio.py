"""A Service Catalog portfolio holding one product that SageMaker Studio lists as a project template."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_servicecatalog as servicecatalog
from constructs import Construct

STUDIO_VISIBILITY_TAG = "sagemaker:studio-visibility"
"""Studio lists a product among the organization templates only when it carries this tag set to ``true``."""


@dataclass(frozen=True)
class ProjectPortfolioProps:
    portfolio_name: str
    product_name: str
    product_version: str
    """The version name Studio shows; a new one replaces the product's template in place."""
    provider_name: str
    template: servicecatalog.CloudFormationTemplate
    launch_role: iam.IRole
    principals: tuple[iam.IRole, ...]
    """The SageMaker execution roles whose users may create projects from the product."""
    description: str = (
        "Creates the repositories, build and deploy pipelines and model registry of an MLOps project"
    )


class ProjectPortfolio(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ProjectPortfolioProps) -> None:
        super().__init__(scope, construct_id)
        self.portfolio = servicecatalog.Portfolio(
            self,
            "Portfolio",
            display_name=props.portfolio_name,
            provider_name=props.provider_name,
            description="SageMaker project templates of the platform team",
        )
        self.product = servicecatalog.CloudFormationProduct(
            self,
            "Product",
            product_name=props.product_name,
            owner=props.provider_name,
            description=props.description,
            product_versions=[
                servicecatalog.CloudFormationProductVersion(
                    product_version_name=props.product_version,
                    cloud_formation_template=props.template,
                    description=props.description,
                )
            ],
        )
        Tags.of(self.product).add(STUDIO_VISIBILITY_TAG, "true")
        self.portfolio.add_product(self.product)
        # The launch constraint: projects are provisioned as this role, never as the Studio user.
        self.portfolio.set_launch_role(self.product, props.launch_role)
        for role in props.principals:
            self.portfolio.give_access_to_role(role)
