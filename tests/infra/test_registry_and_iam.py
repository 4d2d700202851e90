"""The model registry, the execution role, and least privilege across every IAM policy of the app."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam

from model_build import pipeline_spec as ps
from model_build.step_roles import step_roles
from model_build.storage_layout import pipeline_storage
from tests.infra.conftest import REPO_ROOT, SynthesizedApp, render

# The only actions allowed on Resource "*": AWS offers no resource-level permission for them. Each use in
# infra/ must carry the comment `AWS requires "*"` on the line(s) above it.
STAR_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "sagemaker:ListModelPackages",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DescribeScheduledActions",
    "cloudwatch:GetMetricData",
    "glue:GetSecurityConfiguration",
    "ec2:DescribeInstanceTypes",
}


def _statements(app: SynthesizedApp) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy (IAM::Policy and inline role policies) in the app."""
    for name, policy in app.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield name, statement
    for name, role in app.resources("AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies", []):
            for statement in inline["PolicyDocument"]["Statement"]:
                yield name, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_policy_statements(app: SynthesizedApp, role: iam.IRole) -> list[dict[str, Any]]:
    """The rendered statements of ``role``'s default policy, found by its logical id."""
    stack = Stack.of(role)
    policy = role.node.find_child("DefaultPolicy").node.default_child
    logical_id = stack.resolve(stack.get_logical_id(policy))
    return render(
        app.templates[stack.stack_name]["Resources"][logical_id]["Properties"]["PolicyDocument"]["Statement"]
    )


def test_no_wildcard_actions_anywhere(any_app: SynthesizedApp) -> None:
    for name, statement in _statements(any_app):
        for action in _as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{name}: wildcard action {action}"


def test_star_resources_only_for_actions_aws_grants_on_nothing_narrower(any_app: SynthesizedApp) -> None:
    seen: set[str] = set()
    for name, statement in _statements(any_app):
        if "*" in _as_list(statement["Resource"]):
            actions = set(_as_list(statement["Action"]))
            assert actions <= STAR_RESOURCE_ACTIONS, f"{name}: {sorted(actions)} on Resource '*'"
            seen |= actions
    assert seen == STAR_RESOURCE_ACTIONS, "the allow-list names actions the app no longer uses"


def test_each_star_resource_is_commented_in_the_source() -> None:
    sources = "\n".join(path.read_text() for path in sorted((REPO_ROOT / "infra").rglob("*.py")))
    for action in STAR_RESOURCE_ACTIONS:
        pattern = rf'# AWS requires "\*"[^\n]*{re.escape(action)}[\s\S]{{0,400}}?"{re.escape(action)}"'
        assert re.search(pattern, sources), f'{action} on "*" lacks its `# AWS requires "*"` comment'


def test_model_package_group_is_named_from_the_config_and_retained(default_app: SynthesizedApp) -> None:
    default_app.template("registry").has_resource(
        "AWS::SageMaker::ModelPackageGroup",
        {
            "Properties": {"ModelPackageGroupName": default_app.config.model_package_group_name},
            "DeletionPolicy": "Retain",
        },
    )


def test_registry_is_deleted_when_data_is_not_retained(all_options_app: SynthesizedApp) -> None:
    all_options_app.template("registry").has_resource(
        "AWS::SageMaker::ModelPackageGroup", {"DeletionPolicy": "Delete"}
    )


def test_execution_role_and_step_roles_are_for_sagemaker_only(default_app: SynthesizedApp) -> None:
    config = default_app.config
    for role_name in (config.execution_role_name, *(step.role_name for step in step_roles(config))):
        _assert_for_sagemaker_only(default_app, role_name)


def _assert_for_sagemaker_only(default_app: SynthesizedApp, role_name: str) -> None:
    default_app.template("registry").has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": role_name,
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                    }
                ]
            },
            # No managed policy (AmazonSageMakerFullAccess would grant every SageMaker action on everything).
            "ManagedPolicyArns": None,
        },
    )


def test_execution_role_reaches_only_this_projects_resources(default_app: SynthesizedApp) -> None:
    """The pipeline's own role registers models, starts the jobs and reads their reports; it writes nothing
    in S3, reads no raw data and holds no Feature Store, Athena or Glue action: its jobs do, as their roles."""
    config = default_app.config
    all_statements = _role_policy_statements(default_app, default_app.stacks.registry.execution_role)
    statements = {s["Sid"]: s for s in all_statements if "Sid" in s}
    arn = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
    assert (
        statements["RegisterModels"]["Resource"][1]
        == f"{arn}:model-package/{config.model_package_group_name}/*"
    )
    assert statements["PassStepRolesToSageMaker"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    actions = {action for statement in all_statements for action in _as_list(statement["Action"])}
    assert not {a for a in actions if a.split(":")[0] in ("athena", "glue")}
    assert not {a for a in actions if "Record" in a}
    s3_actions = {a for a in actions if a.startswith("s3:")}
    assert s3_actions == {"s3:ListBucket", "s3:GetObject", "s3:GetBucketLocation"}
    artifacts = (
        f"arn:${{AWS::Partition}}:s3:::{config.artifacts_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
    )
    s3_resources = {
        resource
        for statement in all_statements
        if any(action.startswith("s3:") for action in _as_list(statement["Action"]))
        for resource in _as_list(statement["Resource"])
    }
    assert s3_resources == {
        artifacts,
        *(f"{artifacts}/{key}" for key in pipeline_storage(config).artifact_reads),
    }


def test_each_step_role_reaches_only_its_steps_resources(default_app: SynthesizedApp) -> None:
    """Raw data is read-only, and read only by the steps whose input it is; each role writes only its own
    step's prefixes; only the step that ingests features may put records, and no role queries Athena."""
    config = default_app.config
    data, artifacts = (
        f"arn:${{AWS::Partition}}:s3:::{prefix}-${{AWS::AccountId}}-${{AWS::Region}}"
        for prefix in (config.data_bucket_prefix, config.artifacts_bucket_prefix)
    )
    storage = pipeline_storage(config)
    roles = default_app.stacks.registry.step_roles
    assert list(roles) == [step.step for step in step_roles(config)]
    for step in step_roles(config):
        all_statements = _role_policy_statements(default_app, roles[step.step])
        statements = {s["Sid"]: s for s in all_statements if "Sid" in s}
        s3_resources = {
            resource
            for statement in all_statements
            if any(action.startswith("s3:") for action in _as_list(statement["Action"]))
            for resource in _as_list(statement["Resource"])
        }
        writes = (*step.writes.outputs, *step.writes.checkpoints)
        raw = {data, *(f"{data}/{key}" for key in storage.data_reads)} if step.reads_input else set()
        assert s3_resources == {
            *raw,
            artifacts,
            *(f"{artifacts}/{key}" for key in (*storage.artifact_reads, *writes)),
        }, step.step
        if step.reads_input:
            assert statements["ReadReviewData"]["Resource"] == f"{data}/{config.raw_reviews_prefix}/*"
        data_actions = {
            action
            for statement in all_statements
            if any(str(resource).startswith(data) for resource in _as_list(statement["Resource"]))
            for action in _as_list(statement["Action"])
        }
        expected_data_actions = {"s3:ListBucket", "s3:GetObject", "s3:GetBucketLocation"}
        assert data_actions == (expected_data_actions if step.reads_input else set()), "raw data is read-only"
        actions = {action for statement in all_statements for action in _as_list(statement["Action"])}
        assert not {a for a in actions if a.split(":")[0] in ("athena", "glue", "iam")}, step.step
        sagemaker_actions = {a for a in actions if a.startswith("sagemaker:")}
        assert sagemaker_actions == ({"sagemaker:PutRecord"} if step.puts_features else set()), step.step
        if step.puts_features:
            assert statements["PutFeatureRecords"]["Resource"] == (
                f"arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:"
                f"feature-group/{config.feature_group_name}"
            )
    assert [step.step for step in step_roles(config) if step.reads_input] == [ps.CHECK_DATA, ps.PROCESS]
    assert [step.step for step in step_roles(config) if step.puts_features] == [ps.PROCESS]


def test_build_project_may_run_only_this_pipeline_and_pass_only_the_execution_role(
    default_app: SynthesizedApp,
) -> None:
    config = default_app.config
    statements = {
        s.get("Sid"): s
        for s in _role_policy_statements(default_app, default_app.stacks.build.build.project.role)
    }
    pipeline = f"arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:pipeline/{config.pipeline_name}"
    assert statements["RunSageMakerPipeline"]["Resource"] == [pipeline, f"{pipeline}/execution/*"]
    assert statements["PassExecutionRoleToSageMaker"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    # CreatePipeline passes the pipeline's role; the jobs' roles are passed by that role when it starts them.
    passed = [
        resource
        for s in statements.values()
        if "iam:PassRole" in _as_list(s["Action"])
        for resource in _as_list(s["Resource"])
    ]
    assert len(passed) == 1 and "ExecutionRole" in str(passed[0]), passed


def test_framework_images_are_pulled_from_the_regions_own_dlc_account(any_app: SynthesizedApp) -> None:
    """The Deep Learning Containers' account differs in opt-in regions: every stack that pulls them maps the
    region to the account the SageMaker SDK's image configuration names, and no account is spelled."""
    from infra.constructs.framework_images import (
        DEEP_LEARNING_CONTAINERS_MAPPING,
        deep_learning_containers_accounts,
    )

    accounts = deep_learning_containers_accounts()
    assert accounts["us-east-1"] != accounts["af-south-1"], "opt-in regions have accounts of their own"
    pulling = 0
    for name, template in any_app.templates.items():
        text = json.dumps({key: value for key, value in template.items() if key != "Mappings"})
        assert accounts["us-east-1"] not in text, f"{name} spells the DLC account outside its mapping"
        if "ecr:BatchGetImage" in text:
            pulling += 1
            mapping = template["Mappings"][DEEP_LEARNING_CONTAINERS_MAPPING]
            assert {region: entry["account"] for region, entry in mapping.items()} == accounts
            assert (
                '"Fn::FindInMap": ["DeepLearningContainersAccounts", {"Ref": "AWS::Region"}, "account"]'
                in text
            )
    assert pulling >= 2, "the registry's and the monitoring stack's roles pull framework images"
