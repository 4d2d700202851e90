"""Each step of the SageMaker definition is a request SageMaker's API accepts: its ``Arguments`` validated against
the request shape of the call SageMaker makes for it (botocore's service model), with every pipeline variable
replaced by a value of the type the shape wants there.

botocore's own validator (what the Stubber runs) checks required members, unknown members, types and minimums;
lengths, patterns and enums of the shapes are checked here too, as the service would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.model import Shape
from botocore.validate import validate_parameters

from model_build.config import load_config
from tests.model_build.codebuild_environment import ENVIRONMENT, mocked_aws

# The call SageMaker Pipelines makes for each step type that creates something
# (https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-steps.html).
OPERATIONS = {
    "Processing": "CreateProcessingJob",
    "Training": "CreateTrainingJob",
    "RegisterModel": "CreateModelPackage",
    "Model": "CreateModel",
    "Transform": "CreateTransformJob",
    "Tuning": "CreateHyperParameterTuningJob",
}
# What SageMaker fills in when it runs the step: the SDK pops these from the definition ("will be overridden
# at pipeline execution time", its warning says).
FILLED_AT_EXECUTION = {
    "CreateProcessingJob": {"ProcessingJobName": "pipelines-abc123-CheckData-x"},
    "CreateTrainingJob": {"TrainingJobName": "pipelines-abc123-TrainModel-x"},
    "CreateHyperParameterTuningJob": {"HyperParameterTuningJobName": "tune-abc123"},
}
PIPELINE_FUNCTIONS = ("Get", "Std:Join", "Std:JsonGet", "Std:Concat", "Std:Join:Values")
SAMPLE_STRINGS = ("s3://bucket/key", "ml.m5.large", "arn:aws:iam::123456789012:role/r", "1", "x")


@pytest.fixture(scope="module")
def aws() -> Iterator[boto3.Session]:
    with mocked_aws() as session:
        yield session


@pytest.fixture(scope="module")
def definition(aws: boto3.Session) -> dict[str, Any]:
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    config = load_config()
    settings = aws_settings(config, aws, ENVIRONMENT)
    pipeline = build_pipeline(settings, pipeline_session(settings, config, aws), config)
    return json.loads(pipeline.definition())


def _steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for step in steps:
        yield step
        for branch in ("IfSteps", "ElseSteps"):
            yield from _steps(step.get("Arguments", {}).get(branch, []))


def _is_pipeline_variable(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in PIPELINE_FUNCTIONS


def _fits(value: Any, shape: Shape) -> bool:
    return not _shape_problems("", value, shape)


def _sample(shape: Shape, default: Any = None) -> Any:
    """A value of ``shape``'s type: the parameter's default where it has that type, else one that fits."""
    kind = shape.type_name
    if kind == "string":
        candidates = (
            ([str(default)] if default is not None else []) + list(shape.enum or []) + list(SAMPLE_STRINGS)
        )
        fitting = [c for c in candidates if _fits(c, shape)]
        return fitting[0] if fitting else "x" * max(1, shape.metadata.get("min", 1))
    if kind in ("integer", "long"):
        return (
            default
            if isinstance(default, int) and not isinstance(default, bool)
            else shape.metadata.get("min", 1)
        )
    if kind in ("float", "double"):
        return float(default) if isinstance(default, int | float) and not isinstance(default, bool) else 1.0
    if kind == "boolean":
        return default if isinstance(default, bool) else True
    raise AssertionError(f"a pipeline variable where the API wants a {kind} ({shape.name})")


def concrete(value: Any, shape: Shape, parameters: dict[str, Any]) -> Any:
    """``value`` with each pipeline variable replaced by a value of the type its place in ``shape`` wants."""
    if _is_pipeline_variable(value):
        reference = value.get("Get", "")
        default = (
            parameters.get(reference.removeprefix("Parameters.")) if isinstance(reference, str) else None
        )
        return _sample(shape, default)
    if shape.type_name == "structure" and isinstance(value, dict):
        return {
            key: concrete(item, shape.members[key], parameters) if key in shape.members else item
            for key, item in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [concrete(item, shape.member, parameters) for item in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: concrete(item, shape.value, parameters) for key, item in value.items()}
    return value


def _shape_problems(where: str, value: Any, shape: Shape) -> list[str]:
    """Lengths, patterns and enums (what botocore's client-side validator leaves to the service)."""
    problems = []
    limits = shape.metadata
    if shape.type_name == "string" and isinstance(value, str):
        if "max" in limits and len(value) > limits["max"]:
            problems.append(f"{where}: {len(value)} characters, the shape allows {limits['max']}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} is not one of {shape.enum}")
        pattern = limits.get("pattern")
        if pattern:
            try:
                compiled = re.compile(pattern, re.DOTALL)
            except re.error:
                compiled = None  # a Java-only construct; botocore's shapes rarely use one
            if compiled is not None and not compiled.fullmatch(value):
                problems.append(f"{where}: {value[:80]!r} does not match {pattern}")
    elif shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                problems += _shape_problems(f"{where}.{key}", item, shape.members[key])
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in limits and len(value) > limits["max"]:
            problems.append(f"{where}: {len(value)} items, the shape allows {limits['max']}")
        for index, item in enumerate(value):
            problems += _shape_problems(f"{where}[{index}]", item, shape.member)
    elif shape.type_name == "map" and isinstance(value, dict):
        if "max" in limits and len(value) > limits["max"]:
            problems.append(f"{where}: {len(value)} entries, the shape allows {limits['max']}")
        for key, item in value.items():
            problems += _shape_problems(f"{where}[{key!r}]", key, shape.key)
            problems += _shape_problems(f"{where}[{key!r}]", item, shape.value)
    return problems


def request_problems(step: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """What SageMaker's API would refuse in the request a step makes."""
    operation = OPERATIONS[step["Type"]]
    shape = (
        botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).input_shape
    )
    request = {**FILLED_AT_EXECUTION.get(operation, {}), **concrete(step["Arguments"], shape, parameters)}
    problems = [f"{step['Name']} ({operation}){p}" for p in _shape_problems("", request, shape)]
    try:
        validate_parameters(request, shape)
    except ParamValidationError as error:
        problems.append(f"{step['Name']} ({operation}): {error}")
    return problems


def test_every_step_that_creates_something_is_a_request_the_api_accepts(definition: dict[str, Any]) -> None:
    parameters = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    steps = [s for s in _steps(definition["Steps"]) if s["Type"] in OPERATIONS]
    assert {s["Type"] for s in steps} >= {"Processing", "Training", "RegisterModel"}
    assert [p for step in steps for p in request_problems(step, parameters)] == []


def test_a_tuning_definitions_search_is_a_request_the_api_accepts(aws: boto3.Session) -> None:
    """Built with TuningMaxJobs > 0 the training step is a tuning job (CreateHyperParameterTuningJob)."""
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    config = load_config()
    settings = aws_settings(config, aws, ENVIRONMENT)
    session = pipeline_session(settings, config, aws)
    tuned = json.loads(build_pipeline(settings, session, config, defaults={"TuningMaxJobs": 4}).definition())
    parameters = {p["Name"]: p.get("DefaultValue") for p in tuned["Parameters"]}
    steps = [s for s in _steps(tuned["Steps"]) if s["Type"] == "Tuning"]
    assert len(steps) == 1
    assert [p for step in steps for p in request_problems(step, parameters)] == []


def test_every_step_type_of_the_definition_is_known(definition: dict[str, Any]) -> None:
    """Condition and Fail steps make no request; any other type must have its operation above."""
    types = {s["Type"] for s in _steps(definition["Steps"])}
    assert types - set(OPERATIONS) <= {"Condition", "Fail"}, types


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda a: a["ProcessingResources"]["ClusterConfig"].update(VolumeSizeInGB="30"), "Invalid type"),
        (lambda a: a.pop("AppSpecification"), "Missing required parameter"),
        (lambda a: a.update(RoleArn="x" * 3000), "the shape allows 2048"),
        (lambda a: a.update(ProcessingJobTypo=1), "Unknown parameter"),
    ],
)
def test_the_check_finds_what_the_api_would_refuse(
    definition: dict[str, Any], change: Any, problem: str
) -> None:
    parameters = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    step = json.loads(json.dumps(next(s for s in definition["Steps"] if s["Type"] == "Processing")))
    change(step["Arguments"])
    assert any(problem in p for p in request_problems(step, parameters)), request_problems(step, parameters)
