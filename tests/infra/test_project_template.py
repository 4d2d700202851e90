"""The SageMaker project template: portfolio, product, launch role, and the names two projects get."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match, Template
from cfnlint.api import lint

from infra.constructs.product_launch_role import LAUNCH_PERMISSIONS, ProductLaunchRole, ProductLaunchRoleProps
from infra.constructs.project_portfolio import STUDIO_VISIBILITY_TAG
from infra.project_template_settings import ProjectTemplateSettings
from infra.stacks.project_product_stack import PROJECT_ID_PARAMETER, PROJECT_NAME_PARAMETER
from model_build.config import (
    SAGEMAKER_PROJECT_ID_PATTERN,
    SAGEMAKER_PROJECT_ID_VARIABLE,
    SAGEMAKER_PROJECT_NAME_PATTERN,
    ProjectConfig,
)
from model_build.step_roles import step_roles
from model_deploy.aws.names import endpoint_role_name, endpoint_stack_name
from tests.infra.conftest import REPO_ROOT, STUDIO_ROLES, PublishedTemplate, cdk_json_context

ACCOUNT = "123456789012"
REGION = "eu-west-1"

# The property that holds each resource type's physical name; types absent here are named by CloudFormation
# (unique per stack), which the launch role's ``SC-*`` patterns rely on.
PHYSICAL_NAME = {
    "AWS::IAM::Role": ("RoleName",),
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::KMS::Alias": ("AliasName",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Crawler": ("Name",),
    "AWS::Glue::SecurityConfiguration": ("Name",),
    "AWS::Athena::WorkGroup": ("Name",),
    "AWS::SageMaker::FeatureGroup": ("FeatureGroupName",),
    "AWS::SageMaker::ModelPackageGroup": ("ModelPackageGroupName",),
    "AWS::CodeCommit::Repository": ("RepositoryName",),
    "AWS::CodePipeline::Pipeline": ("Name",),
    "AWS::Events::Rule": ("Name",),
    "AWS::CodeBuild::Project": ("Name",),
}


def _resources(template: Mapping[str, Any], cfn_type: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == cfn_type]


def test_the_product_is_tagged_for_studio_and_in_a_portfolio_shared_with_the_execution_roles(
    published: PublishedTemplate,
) -> None:
    template = Template.from_json(published.portfolio)
    template.has_resource_properties(
        "AWS::ServiceCatalog::CloudFormationProduct",
        {"Tags": Match.array_with([{"Key": STUDIO_VISIBILITY_TAG, "Value": "true"}])},
    )
    template.resource_count_is("AWS::ServiceCatalog::Portfolio", 1)
    template.resource_count_is("AWS::ServiceCatalog::PortfolioProductAssociation", 1)
    principals = sorted(
        r["Properties"]["PrincipalARN"]
        for r in _resources(published.portfolio, "AWS::ServiceCatalog::PortfolioPrincipalAssociation")
    )
    assert principals == sorted(STUDIO_ROLES)
    assert {
        r["Properties"]["PrincipalType"]
        for r in _resources(published.portfolio, "AWS::ServiceCatalog::PortfolioPrincipalAssociation")
    } == {"IAM"}


def test_projects_launch_as_a_role_that_only_service_catalog_assumes(published: PublishedTemplate) -> None:
    (constraint,) = _resources(published.portfolio, "AWS::ServiceCatalog::LaunchRoleConstraint")
    roles = {
        logical_id: r
        for logical_id, r in published.portfolio["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
    }
    (role_id,) = roles
    assert constraint["Properties"]["RoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    trust = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "servicecatalog.amazonaws.com"}]


def test_the_launch_role_grants_named_actions_on_the_projects_names(published: PublishedTemplate) -> None:
    (policy,) = _resources(published.portfolio, "AWS::IAM::Policy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = [
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert all("*" not in action for action in actions), "every action is named"
    assert {a.split(":")[0] for a in actions} >= {"cloudformation", "iam", "s3", "sagemaker", "codepipeline"}
    anywhere = {
        a
        for s in statements
        if s["Resource"] == "*"
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert anywhere == {
        "cloudformation:ValidateTemplate",
        "cloudformation:GetTemplateSummary",
        "glue:CreateSecurityConfiguration",
        "glue:DeleteSecurityConfiguration",
        "glue:GetSecurityConfiguration",
        "glue:CreateCrawler",
        "kms:CreateKey",
        "kms:ListAliases",
        "logs:DescribeLogGroups",
        "logs:DescribeIndexPolicies",
        "logs:DescribeResourcePolicies",
        "codecommit:ListRepositories",
        "lakeformation:DescribeResource",
        "lakeformation:ListResources",
        "lakeformation:DescribeLakeFormationIdentityCenterConfiguration",
    }
    role_resources = next(s["Resource"] for s in statements if "iam:PassRole" in s["Action"])
    rendered = json.dumps(role_resources)
    assert "role/*-p-*" in rendered and "role/SC-*" in rendered and '"*"' not in rendered


def test_the_launch_role_has_permissions_for_every_resource_type_of_the_product(
    published: PublishedTemplate,
) -> None:
    types = {r["Type"] for r in published.product["Resources"].values()}
    assert types <= set(LAUNCH_PERMISSIONS)


def test_a_launch_role_without_permissions_for_a_type_is_an_error() -> None:
    app = App()
    from aws_cdk import Stack

    with pytest.raises(ValueError, match=r"AWS::Lambda::Alias, which the launch role has no permissions"):
        ProductLaunchRole(
            Stack(app, "S"),
            "LaunchRole",
            ProductLaunchRoleProps(("AWS::S3::Bucket", "AWS::Lambda::Alias"), "arn:aws:s3:::b"),
        )


def test_the_product_takes_the_two_parameters_studio_passes_and_checks_them(
    published: PublishedTemplate,
) -> None:
    parameters = published.product["Parameters"]
    assert parameters[PROJECT_NAME_PARAMETER]["AllowedPattern"] == SAGEMAKER_PROJECT_NAME_PATTERN.pattern
    assert parameters[PROJECT_ID_PARAMETER]["AllowedPattern"] == SAGEMAKER_PROJECT_ID_PATTERN.pattern
    assert {name for name in parameters if not name.startswith("BootstrapVersion")} == {
        PROJECT_NAME_PARAMETER,
        PROJECT_ID_PARAMETER,
    }


def test_every_build_project_tells_the_cli_its_project_id(published: PublishedTemplate) -> None:
    projects = _resources(published.product, "AWS::CodeBuild::Project")
    assert len(projects) >= 2
    for project in projects:
        variables = {
            v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]
        }
        assert variables[SAGEMAKER_PROJECT_ID_VARIABLE] == {"Ref": PROJECT_ID_PARAMETER}
        if "MLOPS_ENVIRONMENT" in variables:  # not the pull-request checks, which derive no names
            assert variables["MLOPS_ENVIRONMENT"] == {"Ref": PROJECT_ID_PARAMETER}


def test_the_product_holds_the_resources_cdk_deploy_creates(published: PublishedTemplate) -> None:
    """The product composes the five stacks' constructs again, with the same construct ids: it must hold the
    same resources, with the same logical ids, the same properties set and (build projects) the same
    variables, plus the project id."""
    stacks = Counter(r["Type"] for t in published.mlops_templates.values() for r in t["Resources"].values())
    product = Counter(r["Type"] for r in published.product["Resources"].values())
    assert product == stacks
    in_stacks = {
        logical_id: resource
        for template in published.mlops_templates.values()
        for logical_id, resource in template["Resources"].items()
    }
    in_product = published.product["Resources"]
    # CDK names the rule a CodeCommit source makes after the stack of the pipeline it starts, and the permission
    # that lets the drift alarm's rule invoke the retrain function after the rule's stack.
    renamed = [logical_id for logical_id in in_stacks if logical_id not in in_product]
    assert all(
        logical_id.endswith(tuple("0123456789ABCDEF")) and "EventRule" in logical_id for logical_id in renamed
    )
    assert len(renamed) <= 2
    for logical_id, resource in in_stacks.items():
        if logical_id in renamed:
            continue
        twin = in_product[logical_id]
        assert twin["Type"] == resource["Type"], logical_id
        assert set(twin.get("Properties", {})) == set(resource.get("Properties", {})), logical_id
        if resource["Type"] == "AWS::CodeBuild::Project":
            names = [v["Name"] for v in resource["Properties"]["Environment"].get("EnvironmentVariables", [])]
            twin_names = [v["Name"] for v in twin["Properties"]["Environment"]["EnvironmentVariables"]]
            assert twin_names == [*names, SAGEMAKER_PROJECT_ID_VARIABLE], logical_id


def test_cdk_nag_reports_nothing_unacknowledged_not_even_a_warning(published: PublishedTemplate) -> None:
    """Errors stop the fixture's synthesis; warnings only show in the report, so they are checked here."""
    report = json.loads((published.outdir / "validation-report.json").read_text())
    violations = [
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    assert violations == []


def test_the_crawler_uses_the_security_configuration_that_encrypts_its_logs(
    published: PublishedTemplate,
) -> None:
    """What the GL1 acknowledgment on the product's crawler says (cdk-nag cannot read these names)."""
    (crawler,) = _resources(published.product, "AWS::Glue::Crawler")
    (configuration,) = _resources(published.product, "AWS::Glue::SecurityConfiguration")
    assert crawler["Properties"]["CrawlerSecurityConfiguration"] == configuration["Properties"]["Name"]
    encryption = configuration["Properties"]["EncryptionConfiguration"]["CloudWatchEncryption"]
    assert encryption["CloudWatchEncryptionMode"] == "SSE-KMS"


def test_every_taggable_resource_of_a_project_carries_its_name_and_id(published: PublishedTemplate) -> None:
    """The project's own tags, not those of the stack that published the template (the app's tags)."""
    expected = [
        {"Key": "environment", "Value": {"Ref": PROJECT_ID_PARAMETER}},
        {"Key": "project", "Value": {"Ref": PROJECT_NAME_PARAMETER}},
    ]
    tagged = 0
    for logical_id, resource in published.product["Resources"].items():
        tags = resource.get("Properties", {}).get("Tags")
        if tags is None:
            continue
        if isinstance(tags, dict):  # Glue takes a map
            tags = [{"Key": key, "Value": value} for key, value in tags.items()]
        tagged += 1
        for tag in expected:
            assert tag in tags, f"{logical_id} lacks {tag}"
    assert tagged >= 20


def test_both_templates_pass_cfn_lint(published: PublishedTemplate) -> None:
    for name, template in (("portfolio", published.portfolio), ("product", published.product)):
        matches = lint(json.dumps(template), regions=["us-east-1"])
        errors = [match for match in matches if match.rule.id.startswith("E")]
        assert errors == [], f"{name}: " + "\n".join(str(match) for match in errors)


def _evaluate(value: Any, parameters: Mapping[str, str]) -> Any:
    """What CloudFormation makes of ``value`` for these parameters: Ref, Fn::Join/Select/Split; other
    functions (GetAtt) are left as they are, since they never make a name."""
    pseudo = {
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "x",
    }
    if isinstance(value, list):
        return [_evaluate(item, parameters) for item in value]
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" and argument in {**parameters, **pseudo}:
            return {**parameters, **pseudo}[argument]
        if key == "Fn::Join":
            separator, parts = argument
            return separator.join(str(part) for part in _evaluate(parts, parameters))
        if key == "Fn::Split":
            separator, text = argument
            return _evaluate(text, parameters).split(separator)
        if key == "Fn::Select":
            index, items = argument
            return _evaluate(items, parameters)[int(index)]
    if isinstance(value, dict):
        return {key: _evaluate(item, parameters) for key, item in value.items()}
    return value


def _physical_names(product: Mapping[str, Any], project_name: str, project_id: str) -> dict[str, str]:
    parameters = {PROJECT_NAME_PARAMETER: project_name, PROJECT_ID_PARAMETER: project_id}
    names = {}
    for logical_id, resource in product["Resources"].items():
        value: Any = resource.get("Properties", {})
        for key in PHYSICAL_NAME.get(resource["Type"], ()):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and PHYSICAL_NAME.get(resource["Type"]):
            names[logical_id] = _evaluate(value, parameters)
    return names


def _derived_at_run_time(config: ProjectConfig) -> set[str]:
    """Names the CLI creates or deploys at run time, from the config the build projects' variables load."""
    stages = ("staging", "prod")
    return {
        config.pipeline_name,
        *(config.endpoint_name(stage) for stage in stages),
        *(endpoint_stack_name(config, stage) for stage in stages),
    }


PROJECTS = (("reviews", "p-ab12cd34ef56"), ("reviews2", "p-0z9y8x7w6v5u"))


def test_two_projects_get_two_sets_of_names_that_never_meet(published: PublishedTemplate) -> None:
    (first_name, first_id), (second_name, second_id) = PROJECTS
    first = _physical_names(published.product, first_name, first_id)
    second = _physical_names(published.product, second_name, second_id)
    assert first.keys() == second.keys() and len(first) >= 10
    assert all(isinstance(name, str) for name in [*first.values(), *second.values()]), "every name resolves"
    assert set(first.values()).isdisjoint(second.values())
    first_config = ProjectConfig.for_sagemaker_project(first_name, first_id)
    second_config = ProjectConfig.for_sagemaker_project(second_name, second_id)
    assert _derived_at_run_time(first_config).isdisjoint(_derived_at_run_time(second_config))
    # Even the same name twice (another account's project, a re-created one) differs by the id.
    again = _physical_names(published.product, first_name, second_id)
    assert set(first.values()).isdisjoint(again.values())


# How each named type's ARN is spelled, from its physical name (what IAM authorizes the launch role on).
ARN = {
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::KMS::Alias": "arn:aws:kms:{region}:{account}:{name}",
    "AWS::Glue::Database": "arn:aws:glue:{region}:{account}:database/{name}",
    "AWS::Glue::Crawler": "arn:aws:glue:{region}:{account}:crawler/{name}",
    "AWS::Glue::SecurityConfiguration": "{name}",
    "AWS::Athena::WorkGroup": "arn:aws:athena:{region}:{account}:workgroup/{name}",
    "AWS::SageMaker::FeatureGroup": "arn:aws:sagemaker:{region}:{account}:feature-group/{name}",
    "AWS::SageMaker::ModelPackageGroup": "arn:aws:sagemaker:{region}:{account}:model-package-group/{name}",
    "AWS::CodeCommit::Repository": "arn:aws:codecommit:{region}:{account}:{name}",
    "AWS::CodePipeline::Pipeline": "arn:aws:codepipeline:{region}:{account}:{name}",
    "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{name}",
    "AWS::CodeBuild::Project": "arn:aws:codebuild:{region}:{account}:project/{name}",
}


@pytest.mark.parametrize(("project_name", "project_id"), PROJECTS)
def test_the_launch_role_may_create_every_named_resource_of_a_project(
    published: PublishedTemplate, project_name: str, project_id: str
) -> None:
    """Each name a project's template gives falls under one of the launch role's patterns for its type."""
    checked = 0
    for logical_id, name in _physical_names(published.product, project_name, project_id).items():
        cfn_type = published.product["Resources"][logical_id]["Type"]
        arn = ARN[cfn_type].format(region=REGION, account=ACCOUNT, name=name)
        patterns = [
            pattern.format(partition="aws", region=REGION, account=ACCOUNT)
            for pattern in LAUNCH_PERMISSIONS[cfn_type].resources
        ]
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in patterns), (arn, patterns)
        checked += 1
    assert checked >= 15


def test_the_templates_names_are_the_configs(published: PublishedTemplate) -> None:
    """What the build projects' CLI derives at run time (load_config from their variables) is what the
    template created."""
    project_name, project_id = PROJECTS[0]
    names = set(_physical_names(published.product, project_name, project_id).values())
    with mock.patch.dict(
        os.environ,
        {
            "MLOPS_PROJECT_NAME": project_name,
            "MLOPS_ENVIRONMENT": project_id,
            SAGEMAKER_PROJECT_ID_VARIABLE: project_id,
        },
    ):
        from model_build.config import load_config

        config = load_config()
    assert config == ProjectConfig.for_sagemaker_project(project_name, project_id, region=config.region)
    expected = {
        config.feature_group_name,
        config.model_package_group_name,
        config.glue_database_name,
        config.athena_workgroup_name,
        config.execution_role_name,
        *(step.role_name for step in step_roles(config)),
        config.build_pipeline_name,
        config.deploy_pipeline_name,
        config.approval_rule_name,
        *(endpoint_role_name(config, stage) for stage in ("staging", "prod")),
        *(
            f"{prefix}-{ACCOUNT}-{REGION}"
            for prefix in (
                config.data_bucket_prefix,
                config.artifacts_bucket_prefix,
                config.access_logs_bucket_prefix,
            )
        ),
    }
    assert expected <= names, expected - names
    (feature_group,) = _resources(published.product, "AWS::SageMaker::FeatureGroup")
    catalog = feature_group["Properties"]["OfflineStoreConfig"]["DataCatalogConfig"]
    parameters = {PROJECT_NAME_PARAMETER: project_name, PROJECT_ID_PARAMETER: project_id}
    assert _evaluate(catalog["Database"], parameters) == config.glue_database_name
    assert _evaluate(catalog["TableName"], parameters) == config.feature_group_table_name
    assert config.glue_database_name == "reviews_p_ab12cd34ef56"


def test_the_acknowledgments_of_the_template_stack_have_reasons(published: PublishedTemplate) -> None:
    from aws_cdk import Validations

    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    reasons = {
        rule_id: reason
        for construct in published.app.node.find_all()
        if "sagemaker-project-template" in construct.node.path
        for entry in construct.node.metadata
        if entry.type == key
        for rule_id, reason in entry.data.items()
    }
    assert any("IAM5" in rule_id for rule_id in reasons)
    assert all(len(reason.split()) >= 8 for reason in reasons.values())


def test_without_execution_roles_the_app_has_no_template_stack() -> None:
    """cdk.json names no roles, so ``cdk synth`` and ``cdk deploy --all`` leave the template out."""
    assert not ProjectTemplateSettings.from_context(cdk_json_context()).enabled


def test_app_py_adds_the_template_stack_when_roles_are_named(tmp_path: Path) -> None:
    """``cdk synth -c sagemakerExecutionRoleArns=...`` runs app.py with the context in CDK_CONTEXT_JSON."""
    context = {**cdk_json_context(), "sagemakerExecutionRoleArns": list(STUDIO_ROLES)}
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_")}
    environ.update({"CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    stacks = {
        name
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert "review-sentiment-sagemaker-project-template" in stacks
    assert len(stacks) == 7  # the six of `cdk deploy` and the template
    assert list(tmp_path.glob("*.product.template.json"))
