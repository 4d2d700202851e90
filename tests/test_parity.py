"""Local mode and SageMaker run the same pipeline: same steps in the same order, same parameters and defaults
(but the ones the spec gives a local default), same conditions with the same checks and branches.

Both runners derive everything from ``model_build.pipeline_spec.PIPELINE``; this test checks that the
SageMaker definition really says what the spec says, and that the local runner's parameter view differs from
it only where the spec declares a ``local_default``.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from model_build.config import load_config
from model_build.parameters import resolve
from model_build.pipeline_spec import PIPELINE, ConditionStep, Param

DATA_BUCKET = "parity-data"
ENVIRONMENT = {
    "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/parity",
    "ARTIFACT_BUCKET": "parity-artifacts",
    "DATA_BUCKET": DATA_BUCKET,
}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=ENVIRONMENT["ARTIFACT_BUCKET"])
        config = load_config()
        settings = aws_settings(config, session, ENVIRONMENT)
        return json.loads(
            build_pipeline(settings, pipeline_session(settings, config, session), config).definition()
        )


def all_steps(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every step of a definition by name, those nested in a condition's branches included."""
    found = {}
    for step in steps:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            found.update(all_steps(step["Arguments"].get(branch, [])))
    return found


def test_same_steps(definition):
    steps = all_steps(definition["Steps"])
    assert set(steps) == set(PIPELINE.step_names)
    assert [step["Name"] for step in definition["Steps"]] == [step.name for step in PIPELINE.top_level]
    for step in PIPELINE.steps:
        assert (
            steps[step.name]["Type"]
            == {
                "Processing": "Processing",
                "Training": "Training",
                # a search only where the definition is built with TuningMaxJobs > 0 (0 by default)
                "Tuning": "Tuning" if PIPELINE.parameter("TuningMaxJobs").default else "Training",
                "Condition": "Condition",
                "RegisterModel": "RegisterModel",
                "Fail": "Fail",
            }[step.kind]
        )


def test_same_parameters_with_the_same_defaults_except_the_local_ones(definition):
    on_sagemaker = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    local = resolve(PIPELINE, {}, local=True)
    assert list(on_sagemaker) == list(local) == list(PIPELINE.parameter_names)
    differing = {name for name in local if local[name] != on_sagemaker[name]}
    assert differing == {p.name for p in PIPELINE.parameters if p.local_default is not None}
    assert differing == {"PretrainedModel", "InputDataUrl", "LearningRate"}
    # Where they differ, SageMaker has the AWS default: the model id, and the data bucket for the empty URL.
    assert on_sagemaker["PretrainedModel"] == PIPELINE.parameter("PretrainedModel").default
    assert on_sagemaker["InputDataUrl"] == f"s3://{DATA_BUCKET}/{load_config().raw_reviews_prefix}/"
    for parameter, declared in zip(definition["Parameters"], PIPELINE.parameters, strict=True):
        assert parameter["Type"] == declared.type


def test_same_conditions_checks_and_branches(definition):
    steps = all_steps(definition["Steps"])
    conditions = [step for step in PIPELINE.steps if isinstance(step, ConditionStep)]
    assert conditions
    for spec in conditions:
        arguments = steps[spec.name]["Arguments"]
        assert len(arguments["Conditions"]) == len(spec.checks)
        for check, condition in zip(spec.checks, arguments["Conditions"], strict=True):
            assert condition["Type"] == {">=": "GreaterThanOrEqualTo", "==": "Equals"}[check.operator]
            json_get = condition["LeftValue"]["Std:JsonGet"]
            assert json_get["PropertyFile"] == {
                "Get": f"Steps.{check.left.step}.PropertyFiles.{check.left.property_file}"
            }
            assert json_get["Path"] == check.left.json_path
            if isinstance(check.right, Param):
                assert condition["RightValue"] == {"Get": f"Parameters.{check.right.name}"}
            else:  # a literal (the champion check's True)
                assert condition["RightValue"] == check.right
        assert [s["Name"] for s in arguments["IfSteps"]] == list(spec.if_true)
        assert [s["Name"] for s in arguments["ElseSteps"]] == list(spec.if_false)
