"""Parsing the CDK context: defaults that synthesize with no context, and errors that name the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import InfraSettings, SettingsError
from tests.infra.conftest import REPO_ROOT, cdk_json_context

ARN = "arn:aws:codeconnections:eu-west-1:123456789012:connection/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f"


def test_no_context_gives_the_documented_defaults() -> None:
    settings = InfraSettings.from_context({})
    assert settings == InfraSettings(
        retain_data=True, online_store=False, source_type="codecommit", branch="main", retrain_schedule=None
    )


def test_cdk_json_context_is_the_defaults() -> None:
    """cdk.json lists every setting as a visible knob, each left at its default."""
    assert InfraSettings.from_context(cdk_json_context()) == InfraSettings.from_context({})


def test_a_connection_arn_alone_selects_github() -> None:
    settings = InfraSettings.from_context({"codeConnectionArn": ARN, "repositoryOwner": "acme"})
    assert (settings.source_type, settings.code_connection_arn, settings.repository_owner) == (
        "github",
        ARN,
        "acme",
    )


def test_command_line_strings_are_parsed() -> None:
    """``cdk synth -c retainData=false`` passes the string 'false'."""
    settings = InfraSettings.from_context(
        {
            "retainData": "false",
            "onlineStore": "TRUE",
            "noncurrentVersionRetentionDays": "30",
            "branch": " dev ",
        }
    )
    assert (settings.retain_data, settings.online_store, settings.noncurrent_version_retention_days) == (
        False,
        True,
        30,
    )
    assert settings.branch == "dev"


@pytest.mark.parametrize(
    ("context", "names"),
    [
        ({"sourceType": "github", "repositoryOwner": "acme"}, "codeConnectionArn"),
        ({"codeConnectionArn": ARN}, "repositoryOwner"),
        ({"codeConnectionArn": "not-an-arn"}, "codeConnectionArn='not-an-arn' is not a CodeConnections ARN"),
        ({"sourceType": "gitlab"}, "sourceType='gitlab'"),
        (
            {"codeConnectionArn": "arn:aws:iam::123456789012:role/x", "repositoryOwner": "a"},
            "codeConnectionArn=",
        ),
        ({"retainData": "yes"}, "retainData='yes'"),
        ({"onlineStore": 1}, "onlineStore=1"),
        ({"retrainSchedule": "every week"}, "retrainSchedule='every week'"),
        ({"retrainSchedule": "rate(0 days)"}, "retrainSchedule="),
        ({"noncurrentVersionRetentionDays": "ninety"}, "noncurrentVersionRetentionDays='ninety'"),
        ({"noncurrentVersionRetentionDays": 0}, "noncurrentVersionRetentionDays=0"),
        (
            {"noncurrentVersionRetentionDays": "36501"},
            "noncurrentVersionRetentionDays=36501: use a number of days from 1 to 36500",
        ),
        ({"branch": "bad branch"}, "branch='bad branch'"),
        ({"repositoryName": "a/b"}, "repositoryName='a/b'"),
        ({"projectName": 42}, "projectName=42"),
    ],
)
def test_bad_values_name_the_context_key(context: dict[str, object], names: str) -> None:
    with pytest.raises(SettingsError, match="context") as error:
        InfraSettings.from_context(context)
    assert names in str(error.value)


@pytest.mark.parametrize(
    "schedule",
    [
        "rate(1 day)",
        "rate(7 days)",
        "rate(12 hours)",
        "rate(1 minute)",
        "cron(0 3 ? * MON *)",
        "cron(0/15 8-17 ? * MON-FRI *)",
        "cron(0 3 L * ? *)",
        "cron(0 3 ? JAN,JUL 6#3 2027)",
    ],
)
def test_schedule_expressions_eventbridge_accepts(schedule: str) -> None:
    assert InfraSettings.from_context({"retrainSchedule": schedule}).retrain_schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("rate(1 days)", "a rate of 1 takes the singular unit (day)"),
        ("rate(7 day)", "a rate of 7 takes the plural unit (days)"),
        ("rate(1 minutes)", "singular unit (minute)"),
        ("rate(0 hours)", "at least 1"),
        ("rate(7 weeks)", "not rate(<value> <unit>)"),
        ("cron(0 3 * * ?)", "cron(...) takes 6 fields"),
        ("cron(0 3 ? * MON * 1)", "not 7"),
        ("cron(a b c d e f)", "cron field minutes='a'"),
        ("cron(0 3 * * MON *)", "needs '?' in day-of-month or day-of-week"),
    ],
)
def test_schedule_expressions_eventbridge_rejects_name_the_setting(schedule: str, problem: str) -> None:
    with pytest.raises(SettingsError) as error:
        InfraSettings.from_context({"retrainSchedule": schedule})
    message = str(error.value)
    assert f"context retrainSchedule={schedule!r}" in message
    assert problem in message
    assert "such as 'rate(1 day)', 'rate(7 days)' or 'cron(0 3 ? * MON *)'" in message


def test_the_longest_retention_is_accepted() -> None:
    settings = InfraSettings.from_context({"noncurrentVersionRetentionDays": "36500"})
    assert settings.noncurrent_version_retention_days == 36500


def test_an_empty_schedule_means_none() -> None:
    assert InfraSettings.from_context({"retrainSchedule": ""}).retrain_schedule is None


def test_a_bad_project_name_in_context_names_the_key() -> None:
    from aws_cdk import App

    from infra.app_builder import load_from_context

    with pytest.raises(SettingsError, match=r"context projectName/environment.*project_name='Bad_Name'"):
        load_from_context(App(context={"projectName": "Bad_Name"}))


def test_a_bucket_name_that_could_exceed_63_characters_is_refused() -> None:
    from aws_cdk import App, Stack

    from infra.constructs.secure_bucket import SecureBucket, SecureBucketProps

    prefix = "a-very-long-project-name-prod-datax"  # 35 + len("-<12 digits>-ap-southeast-4") = 63: allowed
    SecureBucket(Stack(App(), "Ok"), "Bucket", SecureBucketProps(prefix, None, None))
    with pytest.raises(ValueError, match=r"too long: .* can reach 64 characters, S3 allows 63"):
        SecureBucket(Stack(App(), "TooLong"), "Bucket", SecureBucketProps(prefix + "x", None, None))


def test_a_project_and_environment_too_long_together_are_refused_before_any_bucket() -> None:
    """Each name passes its own rule; the access-logs bucket (the longest name) would not fit S3's 63."""
    from aws_cdk import App

    from infra.app_builder import load_from_context
    from model_build.config import load_config

    longest = load_config(project_name="abcdefghijklmnopq", environment="prod1")  # 22 together: 63 at most
    assert len(longest.access_logs_bucket_prefix) + len("-123456789012-ap-southeast-4") == 63
    message = (
        r"bucket abcdefghijklmnopqr-prod1-access-logs-<account>-<region> can reach 64 characters, over S3's 63 "
        r"\(account 12, region up to 14\): project_name and environment together may have 22 characters; "
        r"project_name='abcdefghijklmnopqr' and environment='prod1' have 23"
    )
    with pytest.raises(ValueError, match=message):
        load_config(project_name="abcdefghijklmnopqr", environment="prod1")
    with pytest.raises(SettingsError, match=r"^context projectName/environment .*together may have 22"):
        load_from_context(App(context={"projectName": "abcdefghijklmnopqr", "environment": "prod1"}))


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            {"retrainSchedule": "rate(1 days)"},
            "error: context retrainSchedule='rate(1 days)': a rate of 1 takes",
        ),
        (
            {"projectName": "abcdefghijklmnopqr", "environment": "prod1"},
            "error: context projectName/environment (or MLOPS_* variables): bucket ",
        ),
        (
            {"sagemakerExecutionRoleArns": "not-a-list"},
            "error: context sagemakerExecutionRoleArns: 'not-a-list' is not an IAM role ARN",
        ),
    ],
)
def test_app_py_reports_a_bad_setting_in_one_line(
    tmp_path: Path, context: dict[str, str], message: str
) -> None:
    """``cdk synth -c key=value`` runs app.py with the context in CDK_CONTEXT_JSON; a bad value is one line on
    stderr and exit status 1, not a Python traceback."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_")}
    environ.update(
        {"CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), **context}), "CDK_OUTDIR": str(tmp_path)}
    )
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(message)
    assert not list(tmp_path.glob("*.template.json"))
