"""Local mode and SageMaker run the same pipeline: same steps in the same order, same parameters and defaults
(but the ones the spec gives a local default), same condition.

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
from model_build.pipeline_spec import PIPELINE, Param

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


def flatten_steps(definition: dict[str, Any]) -> list[str]:
    names = []
    for step in definition["Steps"]:
        names.append(step["Name"])
        for branch in ("IfSteps", "ElseSteps"):
            names += [inner["Name"] for inner in step["Arguments"].get(branch, [])]
    return names


def test_same_steps_in_the_same_order(definition):
    assert flatten_steps(definition) == list(PIPELINE.step_names)


def test_same_parameters_with_the_same_defaults_except_the_local_ones(definition):
    on_sagemaker = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    local = resolve(PIPELINE, {}, local=True)
    assert list(on_sagemaker) == list(local) == list(PIPELINE.parameter_names)
    differing = {name for name in local if local[name] != on_sagemaker[name]}
    assert differing == {p.name for p in PIPELINE.parameters if p.local_default is not None}
    assert differing == {"PretrainedModel", "InputDataUrl"}
    # Where they differ, SageMaker has the AWS default: the model id, and the data bucket for the empty URL.
    assert on_sagemaker["PretrainedModel"] == PIPELINE.parameter("PretrainedModel").default
    assert on_sagemaker["InputDataUrl"] == f"s3://{DATA_BUCKET}/{load_config().raw_reviews_prefix}/"
    for parameter, declared in zip(definition["Parameters"], PIPELINE.parameters, strict=True):
        assert parameter["Type"] == declared.type


def test_same_condition(definition):
    spec = PIPELINE.condition
    step = next(s for s in definition["Steps"] if s["Name"] == spec.name)
    (condition,) = step["Arguments"]["Conditions"]
    assert condition["Type"] == {">=": "GreaterThanOrEqualTo"}[spec.operator]
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["PropertyFile"] == {"Get": f"Steps.{spec.step}.PropertyFiles.{spec.property_file}"}
    assert json_get["Path"] == spec.json_path
    assert isinstance(spec.right, Param)
    assert condition["RightValue"] == {"Get": f"Parameters.{spec.right.name}"}
    assert [s["Name"] for s in step["Arguments"]["IfSteps"]] == list(spec.if_true)
    assert [s["Name"] for s in step["Arguments"]["ElseSteps"]] == list(spec.if_false)
