"""Both AWS-side CLIs without credentials or a region: one line naming what is missing, exit status 2.

Each runs as a subprocess, as a user runs it, with every ``AWS_*`` variable removed and the AWS config and
credentials files pointed at empty files, so no setup of the machine running the tests is read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_build.aws_setup import NO_CREDENTIALS, NO_REGION, aws_setup_problem

REPO_ROOT = Path(__file__).resolve().parents[1]
ROLE_ARN = "arn:aws:iam::123456789012:role/test-execution"


def _run(tmp_path: Path, *argv: str, **variables: str) -> subprocess.CompletedProcess[str]:
    environ = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environ.pop("SAGEMAKER_VALIDATE_ROLE", None)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        empty = tmp_path / name.lower()
        empty.write_text("", encoding="utf-8")
        environ[name] = str(empty)
    environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance-metadata lookup for credentials
    environ.update(variables)
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_one_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    assert f"error: {message}" in result.stderr.splitlines(), output


@pytest.mark.parametrize(
    "argv",
    [
        ("-m", "pipelines", "definition"),
        ("-m", "pipelines", "run", "--sagemaker"),
    ],
    ids=["definition", "run-sagemaker"],
)
def test_pipelines_without_credentials_says_so(tmp_path: Path, argv: tuple[str, ...]) -> None:
    role = {"SAGEMAKER_PIPELINE_ROLE_ARN": ROLE_ARN} if "run" in argv else {}
    result = _run(tmp_path, *argv, "--run-dir", str(tmp_path / "runs"), **role)
    _assert_one_line(result, NO_CREDENTIALS)


def test_a_malformed_role_arn_is_reported_before_any_aws_call(tmp_path: Path) -> None:
    # No credentials: an STS call would end in the credentials error instead of this one.
    result = _run(
        tmp_path,
        *("-m", "pipelines", "run", "--sagemaker", "--run-dir", str(tmp_path / "runs")),
        SAGEMAKER_PIPELINE_ROLE_ARN="bogus",
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output and result.returncode == 2, output
    assert "SAGEMAKER_PIPELINE_ROLE_ARN='bogus' is not an IAM role ARN" in result.stderr, output


DEPLOY_COMMANDS = {
    "resolve": ("resolve",),
    "render": ("render", "--out", "rendered"),
    "transform": (
        *("transform", "--input", "s3://b/in/", "--output", "s3://b/out/"),
        *("--role-arn", ROLE_ARN),
    ),
    "smoke-test": ("smoke-test", "--endpoint", "x", "--timeout", "5"),
}


@pytest.mark.parametrize("command", DEPLOY_COMMANDS, ids=list(DEPLOY_COMMANDS))
def test_model_deploy_without_a_region_says_so(tmp_path: Path, command: str) -> None:
    result = _run(tmp_path, "-m", "model_deploy", *DEPLOY_COMMANDS[command])
    _assert_one_line(result, NO_REGION)


@pytest.mark.parametrize("command", DEPLOY_COMMANDS, ids=list(DEPLOY_COMMANDS))
def test_model_deploy_without_credentials_says_so(tmp_path: Path, command: str) -> None:
    variables = {"AWS_DEFAULT_REGION": "us-east-1", "DATA_BUCKET": "d", "KMS_KEY_ARN": "k"}
    result = _run(tmp_path, "-m", "model_deploy", *DEPLOY_COMMANDS[command], **variables)
    _assert_one_line(result, NO_CREDENTIALS)


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_transform_refuses_fewer_than_one_instance(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    from model_deploy.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*DEPLOY_COMMANDS["transform"], "--instance-count", count])
    assert exit_.value.code == 2
    assert "--instance-count" in capsys.readouterr().err


def test_other_errors_are_not_taken_for_a_missing_setup() -> None:
    from botocore.exceptions import EndpointConnectionError, ProfileNotFound

    assert aws_setup_problem(ValueError("no credentials")) is None
    assert aws_setup_problem(EndpointConnectionError(endpoint_url="https://x")) is None
    assert "unset AWS_PROFILE" in (aws_setup_problem(ProfileNotFound(profile="nope")) or "")
