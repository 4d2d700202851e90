"""The deploy step against stubbed CloudFormation and SageMaker: idempotence, creation, updates, failures,
and the two-step update around an instance type change under autoscaling."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from model_deploy.aws.deploy import (
    DeployFailed,
    StackDeployer,
    StageDeployment,
    deploy_stage,
    endpoint_instance_type,
    has_autoscaling,
    without_autoscaling,
)
from tests.model_deploy.aws.conftest import ACCOUNT, REGION, StubbedClients, package_arn, stub_serving

ENDPOINT = "review-sentiment-dev-prod"
STACK = "review-sentiment-dev-endpoint-prod"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/endpoint-stacks"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0a1b2c3d"
NOW = datetime(2025, 3, 4, tzinfo=UTC)


def endpoint_template(instance_type: str, *, autoscaling: bool = True) -> dict[str, Any]:
    """The shape of a rendered endpoint template (the real one is checked in tests/infra)."""
    resources: dict[str, Any] = {
        "Config": {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Properties": {
                "ProductionVariants": [{"VariantName": "AllTraffic", "InstanceType": instance_type}]
            },
        },
        "Endpoint": {
            "Type": "AWS::SageMaker::Endpoint",
            "Properties": {
                "EndpointName": ENDPOINT,
                "EndpointConfigName": {"Fn::GetAtt": ["Config", "Name"]},
            },
        },
    }
    if autoscaling:
        resources["Target"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {"ResourceId": f"endpoint/{ENDPOINT}/variant/AllTraffic"},
            "DependsOn": ["Endpoint"],
        }
        resources["Policy"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {"ScalingTargetId": {"Ref": "Target"}},
        }
        resources["Dashboard"] = {"Type": "AWS::CloudWatch::Dashboard", "DependsOn": ["Target", "Endpoint"]}
    return {"Resources": resources}


def stub_status(cfn: Stubber, status: str | None) -> None:
    if status is None:
        cfn.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message=f"Stack with id {STACK} does not exist",
            expected_params={"StackName": STACK},
        )
    else:
        cfn.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {"StackName": STACK, "StackId": STACK_ID, "CreationTime": NOW, "StackStatus": status}
                ]
            },
            {"StackName": STACK},
        )


def stub_change_set(cfn: Stubber, template: dict[str, Any], *, change_set_type: str, final: str) -> None:
    """One create-wait-execute-wait round; ``final`` is the stack status the last wait sees."""
    stub_status(cfn, None if change_set_type == "CREATE" else "UPDATE_COMPLETE")
    cfn.add_response(
        "create_change_set",
        {"Id": "change-set-id", "StackId": STACK_ID},
        {
            "StackName": STACK,
            "ChangeSetName": ANY,
            "ChangeSetType": change_set_type,
            "TemplateBody": json.dumps(template),
            "RoleARN": ROLE,
            "Description": ANY,
        },
    )
    cfn.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"})
    cfn.add_response("execute_change_set", {}, {"StackName": STACK, "ChangeSetName": ANY})
    stub_status(cfn, final)


def run(
    aws: StubbedClients,
    template: dict[str, Any],
    package: str = package_arn(4),
    smoke_test: Any = None,
) -> tuple[str, list[str]]:
    lines: list[str] = []
    deployer = StackDeployer(aws.client("cloudformation"), ROLE, poll_seconds=0, log=lines.append)
    target = StageDeployment("prod", ENDPOINT, STACK, package, template)
    result = deploy_stage(aws.client("sagemaker"), deployer, target, smoke_test)
    aws.assert_no_pending_responses()
    return result, lines


def stub_first_deploy(aws: StubbedClients) -> dict[str, Any]:
    """A stage with no stack yet: one creation, after which the endpoint serves version 4."""
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    template = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, None)
    stub_status(cfn, None)
    stub_change_set(cfn, template, change_set_type="CREATE", final="CREATE_COMPLETE")
    stub_serving(sagemaker, ENDPOINT, package_arn(4))
    return template


def test_a_stage_that_already_serves_the_version_is_left_alone(aws: StubbedClients) -> None:
    stub_serving(aws.stub("sagemaker"), ENDPOINT, package_arn(4))
    aws.stub("cloudformation")  # no CloudFormation call is expected: any would fail the test
    result, lines = run(aws, endpoint_template("ml.m5.xlarge"))
    assert result == "current"
    assert lines == [f"prod: {ENDPOINT} already serves {package_arn(4)}; left alone"]


def test_the_first_deploy_creates_the_stack(aws: StubbedClients) -> None:
    template = stub_first_deploy(aws)
    result, lines = run(aws, template)
    assert result == "deployed"
    assert lines[0] == f"prod: {ENDPOINT} serves nothing; deploying {package_arn(4)}"
    assert lines[-1] == f"prod: {ENDPOINT} serves {package_arn(4)} (InService)"


def test_a_new_version_on_the_same_instance_type_is_one_update(aws: StubbedClients) -> None:
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    template = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response("get_template", {"TemplateBody": json.dumps(endpoint_template("ml.m5.xlarge"))})
    stub_change_set(cfn, template, change_set_type="UPDATE", final="UPDATE_COMPLETE")
    stub_serving(sagemaker, ENDPOINT, package_arn(4), instance_type="ml.m5.xlarge")
    result, lines = run(aws, template)
    assert result == "deployed"
    assert not any("removing autoscaling" in line for line in lines)


def test_an_instance_type_change_removes_autoscaling_first_then_deploys_with_it(aws: StubbedClients) -> None:
    """SageMaker refuses the type change of an autoscaled variant: the live template without its scaling
    resources goes first (CloudFormation deregisters the target), then the new template registers it again."""
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    live = endpoint_template("ml.m5.large")
    new = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.large")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response(
        "get_template", {"TemplateBody": json.dumps(live)}, {"StackName": STACK, "TemplateStage": "Original"}
    )
    stub_change_set(cfn, without_autoscaling(live), change_set_type="UPDATE", final="UPDATE_COMPLETE")
    stub_change_set(cfn, new, change_set_type="UPDATE", final="UPDATE_COMPLETE")
    stub_serving(sagemaker, ENDPOINT, package_arn(4), instance_type="ml.m5.xlarge")
    result, lines = run(aws, new)
    assert result == "deployed"
    assert any(
        "from ml.m5.large to ml.m5.xlarge" in line and "removing autoscaling first" in line for line in lines
    )


def test_a_failed_instance_type_change_puts_the_live_template_and_its_autoscaling_back(
    aws: StubbedClients,
) -> None:
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    live = endpoint_template("ml.m5.large")
    new = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.large")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response("get_template", {"TemplateBody": json.dumps(live)})
    stub_change_set(cfn, without_autoscaling(live), change_set_type="UPDATE", final="UPDATE_COMPLETE")
    stub_change_set(cfn, new, change_set_type="UPDATE", final="UPDATE_ROLLBACK_COMPLETE")
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    stub_change_set(cfn, live, change_set_type="UPDATE", final="UPDATE_COMPLETE")
    with pytest.raises(DeployFailed, match="updating failed"):
        run(aws, new)
    aws.assert_no_pending_responses()


def test_an_instance_type_change_without_live_autoscaling_is_one_update(aws: StubbedClients) -> None:
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    new = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.large")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response(
        "get_template", {"TemplateBody": json.dumps(endpoint_template("ml.m5.large", autoscaling=False))}
    )
    stub_change_set(cfn, new, change_set_type="UPDATE", final="UPDATE_COMPLETE")
    stub_serving(sagemaker, ENDPOINT, package_arn(4), instance_type="ml.m5.xlarge")
    assert run(aws, new)[0] == "deployed"


def test_without_autoscaling_drops_the_scaling_resources_and_every_mention() -> None:
    live = endpoint_template("ml.m5.large")
    stripped = without_autoscaling(live)
    assert set(stripped["Resources"]) == {"Config", "Endpoint", "Dashboard"}
    assert stripped["Resources"]["Dashboard"]["DependsOn"] == ["Endpoint"]
    assert not has_autoscaling(stripped) and has_autoscaling(live)
    assert endpoint_instance_type(stripped) == "ml.m5.large"
    assert set(live["Resources"]) == {"Config", "Endpoint", "Target", "Policy", "Dashboard"}, "not mutated"
    live["Resources"]["Dashboard"]["Properties"] = {"Body": {"Ref": "Target"}}
    with pytest.raises(DeployFailed, match="still refers to Target"):
        without_autoscaling(live)


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("ROLLBACK_COMPLETE", "first creation failed"),
        # A first change set that failed or was never executed leaves the stack in REVIEW_IN_PROGRESS for good.
        ("REVIEW_IN_PROGRESS", "REVIEW_IN_PROGRESS, no resources"),
    ],
)
def test_a_stack_without_resources_is_deleted_and_created_again(
    aws: StubbedClients, status: str, said: str
) -> None:
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    template = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, None)
    stub_status(cfn, status)
    if status == "REVIEW_IN_PROGRESS":
        cfn.add_response(
            "list_change_sets",
            {
                "Summaries": [
                    {"ChangeSetName": "deploy-1", "Status": "FAILED", "ExecutionStatus": "UNAVAILABLE"}
                ]
            },
            {"StackName": STACK},
        )
    cfn.add_response("delete_stack", {}, {"StackName": STACK, "RoleARN": ROLE})
    stub_status(cfn, None)  # the delete waiter: gone
    stub_change_set(cfn, template, change_set_type="CREATE", final="CREATE_COMPLETE")
    stub_serving(sagemaker, ENDPOINT, package_arn(4))
    result, lines = run(aws, template)
    assert result == "deployed"
    assert any(said in line for line in lines)


def test_a_stack_whose_first_change_set_is_being_created_is_not_touched(aws: StubbedClients) -> None:
    stub_serving(aws.stub("sagemaker"), ENDPOINT, None)
    cfn = aws.stub("cloudformation")
    stub_status(cfn, "REVIEW_IN_PROGRESS")
    cfn.add_response(
        "list_change_sets", {"Summaries": [{"ChangeSetName": "deploy-2", "Status": "CREATE_IN_PROGRESS"}]}
    )
    with pytest.raises(DeployFailed, match="REVIEW_IN_PROGRESS: another deploy is running"):
        run(aws, endpoint_template("ml.m5.xlarge"))


def test_a_failed_update_reports_cloudformations_reasons(aws: StubbedClients) -> None:
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    template = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response("get_template", {"TemplateBody": json.dumps(template)})
    stub_change_set(cfn, template, change_set_type="UPDATE", final="UPDATE_ROLLBACK_COMPLETE")
    reason = "Endpoint update failed: the alarm review-sentiment-dev-prod-model-latency fired; rolled back"
    cfn.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {
                    "StackId": STACK_ID,
                    "EventId": "2",
                    "StackName": STACK,
                    "LogicalResourceId": "ModelEndpoint",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": reason,
                    "Timestamp": NOW,
                },
                {
                    "StackId": STACK_ID,
                    "EventId": "1",
                    "StackName": STACK,
                    "LogicalResourceId": "Config",
                    "ResourceStatus": "CREATE_COMPLETE",
                    "Timestamp": NOW,
                },
            ]
        },
    )
    with pytest.raises(
        DeployFailed, match="updating failed: ModelEndpoint UPDATE_FAILED: Endpoint update failed"
    ):
        run(aws, template)


def test_an_update_that_left_the_old_version_serving_fails(aws: StubbedClients) -> None:
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    template = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response("get_template", {"TemplateBody": json.dumps(template)})
    stub_change_set(cfn, template, change_set_type="UPDATE", final="UPDATE_COMPLETE")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge")
    with pytest.raises(DeployFailed, match="rolled back"):
        run(aws, template)


def test_a_stack_being_changed_is_not_touched(aws: StubbedClients) -> None:
    stub_serving(aws.stub("sagemaker"), ENDPOINT, package_arn(3))
    stub_status(aws.stub("cloudformation"), "UPDATE_IN_PROGRESS")
    with pytest.raises(DeployFailed, match="UPDATE_IN_PROGRESS: another deploy is running"):
        run(aws, endpoint_template("ml.m5.xlarge"))


def test_a_change_set_without_changes_is_deleted_and_reported(aws: StubbedClients) -> None:
    cfn = aws.stub("cloudformation")
    template = endpoint_template("ml.m5.xlarge")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response("create_change_set", {"Id": "change-set-id", "StackId": STACK_ID})
    failed = {
        "Status": "FAILED",
        "StatusReason": "The submitted information didn't contain changes. Submit different information.",
    }
    cfn.add_response("describe_change_set", failed)  # the waiter sees FAILED
    cfn.add_response("describe_change_set", failed)  # the deployer asks why
    cfn.add_response("delete_change_set", {}, {"StackName": STACK, "ChangeSetName": ANY})
    lines: list[str] = []
    deployer = StackDeployer(aws.client("cloudformation"), ROLE, poll_seconds=0, log=lines.append)
    assert deployer.deploy(STACK, template, reason="test") is False
    assert lines == [f"{STACK}: no changes"]
    aws.assert_no_pending_responses()


def failing_smoke_test(endpoint: str) -> tuple[bool, str]:
    return False, f"smoke test of {endpoint} FAILED: 2 of 6 checks failed; 'great' came back NEGATIVE"


def test_a_version_that_fails_its_smoke_test_is_rolled_back_to_the_previous_package(
    aws: StubbedClients,
) -> None:
    sagemaker, cfn = aws.stub("sagemaker"), aws.stub("cloudformation")
    live = endpoint_template("ml.m5.xlarge")
    live["Description"] = "serving version 3"
    template = endpoint_template("ml.m5.xlarge")
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response("get_template", {"TemplateBody": json.dumps(live)})
    stub_change_set(cfn, template, change_set_type="UPDATE", final="UPDATE_COMPLETE")
    stub_serving(sagemaker, ENDPOINT, package_arn(4), instance_type="ml.m5.xlarge")
    stub_change_set(cfn, live, change_set_type="UPDATE", final="UPDATE_COMPLETE")  # back to version 3
    stub_serving(sagemaker, ENDPOINT, package_arn(3), instance_type="ml.m5.xlarge")
    with pytest.raises(DeployFailed) as failed:
        run(aws, template, smoke_test=failing_smoke_test)
    message = str(failed.value)
    assert f"{package_arn(4)} failed its smoke test on {ENDPOINT}" in message
    assert "'great' came back NEGATIVE" in message
    assert message.endswith(f"prod is back on {package_arn(3)}")
    aws.assert_no_pending_responses()


def test_a_first_version_that_fails_its_smoke_test_stays_and_the_failure_says_so(aws: StubbedClients) -> None:
    template = stub_first_deploy(aws)
    with pytest.raises(DeployFailed, match="nothing served before on this stage, so the endpoint stays"):
        run(aws, template, smoke_test=failing_smoke_test)


def test_a_version_that_passes_its_smoke_test_stays(aws: StubbedClients) -> None:
    template = stub_first_deploy(aws)
    result, lines = run(aws, template, smoke_test=lambda endpoint: (True, f"smoke test of {endpoint} passed"))
    assert result == "deployed" and lines[-1] == f"prod: smoke test of {ENDPOINT} passed"


def test_an_update_gets_traffic_while_it_bakes(aws: StubbedClients) -> None:
    """The rollback alarms need requests to judge the new fleet: the deploy sends them while it waits."""
    cfn = aws.stub("cloudformation")
    template = endpoint_template("ml.m5.xlarge")
    stub_status(cfn, "UPDATE_COMPLETE")
    cfn.add_response("create_change_set", {"Id": "change-set-id", "StackId": STACK_ID})
    cfn.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"})
    cfn.add_response("execute_change_set", {})
    stub_status(cfn, "UPDATE_IN_PROGRESS")
    stub_status(cfn, "UPDATE_COMPLETE")
    sent: list[str] = []
    deployer = StackDeployer(
        aws.client("cloudformation"),
        ROLE,
        poll_seconds=1,
        log=sent.append,
        during_update=lambda: sent.append("x"),
    )
    assert deployer.deploy(STACK, template, reason="serve version 4")
    assert sent.count("x") >= 1
    aws.assert_no_pending_responses()
