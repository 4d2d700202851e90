"""CodeCommit pull requests start a CodeBuild project that runs the README's checks on their source commit."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from infra.constructs.pull_request_checks import CHECK_COMMANDS, PULL_REQUEST_EVENTS
from tests.infra.conftest import SynthesizedApp


def test_a_codecommit_pull_request_runs_make_test_and_make_synth(default_app: SynthesizedApp) -> None:
    build = default_app.template("build")
    (project_id, project) = next(
        (logical_id, resource)
        for logical_id, resource in build.find_resources("AWS::CodeBuild::Project").items()
        if "PullRequestChecks" in logical_id
    )
    assert project["Properties"]["Source"]["Type"] == "CODECOMMIT"
    spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
    assert spec["phases"]["build"]["commands"] == list(CHECK_COMMANDS) == ["make test", "make synth"]
    assert "EncryptionKey" in project["Properties"]
    rules = [
        rule
        for rule in build.find_resources("AWS::Events::Rule").values()
        if rule["Properties"]["EventPattern"].get("detail-type") == ["CodeCommit Pull Request State Change"]
    ]
    (rule,) = rules
    assert rule["Properties"]["EventPattern"]["detail"] == {"event": list(PULL_REQUEST_EVENTS)}
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [project_id, "Arn"]}
    transform = target["InputTransformer"]
    assert transform["InputPathsMap"]["detail-sourceCommit"] == "$.detail.sourceCommit"
    assert '"sourceVersion":<detail-sourceCommit>' in transform["InputTemplate"]
    build.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Action": "codecommit:GitPull", "Resource": Match.any_value()})]
                )
            }
        },
    )


def test_a_github_source_has_no_pull_request_project(all_options_app: SynthesizedApp) -> None:
    """GitHub pull requests run .github/workflows/ci.yml instead."""
    build = all_options_app.template("build")
    assert not [
        logical_id
        for logical_id in build.find_resources("AWS::CodeBuild::Project")
        if "PullRequest" in logical_id
    ]
