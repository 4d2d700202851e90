"""Least privilege in S3, checked against what the pipeline really does.

The SageMaker definition is built offline (moto), with the buckets named as CDK names them in a sample account
and region; every place it writes to and reads from is then checked against the synthesized execution role's
statements with IAM's matching rules (wildcards, ``s3:prefix`` conditions): each write is allowed, raw data is
not writable, nothing outside the checkpoints may be deleted, and each step's statement covers only that step's
prefixes. A change to where the builder writes that the role does not follow fails here, not on AWS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from model_build import pipeline_spec as ps
from model_build.storage_layout import pipeline_storage
from tests.infra.conftest import SynthesizedApp, render

ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
PSEUDO = {"${AWS::Partition}": "aws", "${AWS::AccountId}": ACCOUNT, "${AWS::Region}": REGION}
EXECUTION_ID = "a1b2c3d4e5f6"
TRAINING_JOB = f"pipelines-{EXECUTION_ID}-TrainModel-Xy12AbCd34"
# Every S3 action that changes or removes data, for the checks that raw data cannot be changed.
MUTATING_S3_ACTIONS = (
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:AbortMultipartUpload",
    "s3:RestoreObject",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketPolicy",
)


# ------------------------------------------------------------------------------------------ IAM matching
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters (``/`` included), ``?`` one character."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _matches(pattern: str, value: str) -> bool:
    return _wildcard(pattern).fullmatch(value) is not None


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key not in context:
                return False
            if operator == "StringLike":
                ok = any(_matches(pattern, context[key]) for pattern in _as_list(expected))
            elif operator == "StringEquals":
                ok = context[key] in _as_list(expected)
            else:
                raise AssertionError(f"condition operator {operator} is not modelled by this test")
            if not ok:
                return False
    return True


@dataclass(frozen=True)
class Policy:
    """One role's identity policy, with the template's pseudo parameters replaced by sample values."""

    statements: tuple[dict[str, Any], ...]

    def allows(self, action: str, resource: str, context: Mapping[str, str] | None = None) -> bool:
        for statement in self.statements:
            assert statement["Effect"] == "Allow", "the template has no Deny statements to model"
            if not any(_matches(pattern, action) for pattern in _as_list(statement["Action"])):
                continue
            if not any(_matches(pattern, resource) for pattern in _as_list(statement["Resource"])):
                continue
            if _condition_holds(statement.get("Condition", {}), context or {}):
                return True
        return False

    def may_read(self, bucket: str, key: str) -> bool:
        return self.allows("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")

    def may_list(self, bucket: str, prefix: str) -> bool:
        return self.allows("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": prefix})

    def may(self, action: str, bucket: str, key: str) -> bool:
        return self.allows(action, f"arn:aws:s3:::{bucket}/{key}")


def _substitute(value: Any) -> Any:
    if isinstance(value, str):
        for token, sample in PSEUDO.items():
            value = value.replace(token, sample)
        return value
    if isinstance(value, list):
        return [_substitute(item) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item) for key, item in value.items()}
    return value


def _role_policy(app: SynthesizedApp, role: Any) -> Policy:
    from aws_cdk import Stack

    stack = Stack.of(role)
    policy = role.node.find_child("DefaultPolicy").node.default_child
    logical_id = stack.resolve(stack.get_logical_id(policy))
    document = app.templates[stack.stack_name]["Resources"][logical_id]["Properties"]["PolicyDocument"]
    return Policy(tuple(_substitute(render(document["Statement"]))))


# ------------------------------------------------------------------------------------ the definition
@pytest.fixture(scope="module")
def buckets(default_app: SynthesizedApp) -> dict[str, str]:
    config = default_app.config
    return {
        "data": f"{config.data_bucket_prefix}-{ACCOUNT}-{REGION}",
        "artifacts": f"{config.artifacts_bucket_prefix}-{ACCOUNT}-{REGION}",
    }


@pytest.fixture(scope="module")
def built(default_app: SynthesizedApp, buckets: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The definition CodeBuild would build in that account, for the stacks' config, and the keys of the code
    the SDK uploaded to the artifacts bucket while building it."""
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    config = default_app.config
    environment = {
        "SAGEMAKER_PIPELINE_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{config.execution_role_name}",
        "ARTIFACT_BUCKET": buckets["artifacts"],
        "DATA_BUCKET": buckets["data"],
    }
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        session.client("s3").create_bucket(Bucket=buckets["artifacts"])
        settings = aws_settings(config, session, environment)
        pipeline = build_pipeline(settings, pipeline_session(settings, config, session), config)
        definition = json.loads(pipeline.definition())
        listed = session.client("s3").list_objects_v2(Bucket=buckets["artifacts"]).get("Contents", [])
        return definition, [item["Key"] for item in listed]


@pytest.fixture(scope="module")
def definition(built: tuple[dict[str, Any], list[str]]) -> dict[str, Any]:
    return built[0]


@pytest.fixture(scope="module")
def execution_role(default_app: SynthesizedApp) -> Policy:
    return _role_policy(default_app, default_app.stacks.registry.execution_role)


def _steps(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in definition["Steps"]:
        yield step
        for branch in ("IfSteps", "ElseSteps"):
            yield from step["Arguments"].get(branch, [])


def _value(value: Any, definition: dict[str, Any]) -> str | None:
    """A definition value as it is at run time: joins joined, the execution id and parameter defaults filled
    in; None for another step's property (checked where that step writes it)."""
    if isinstance(value, str):
        return value
    if "Std:Join" in value:
        parts = [_value(part, definition) for part in value["Std:Join"]["Values"]]
        if any(part is None for part in parts):
            return None
        return value["Std:Join"]["On"].join(str(part) for part in parts)
    reference = value["Get"]
    if reference == "Execution.PipelineExecutionId":
        return EXECUTION_ID
    if reference.startswith("Parameters."):
        (parameter,) = [p for p in definition["Parameters"] if p["Name"] == reference.split(".", 1)[1]]
        return str(parameter["DefaultValue"])
    if reference.startswith("Steps."):
        return None
    raise AssertionError(f"unexpected reference {reference}")


def _split(uri: str) -> tuple[str, str]:
    assert uri.startswith("s3://"), uri
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass(frozen=True)
class Place:
    step: str
    what: str
    bucket: str
    key: str
    """A key prefix (a folder) or, for the code files, an object's key."""


def writes(definition: dict[str, Any]) -> list[Place]:
    """Every place a job of the definition creates objects: processing outputs, model and output data,
    checkpoints. Each is a folder, to which a sample object name is appended."""
    found = []
    for step in _steps(definition):
        arguments = step["Arguments"]
        if step["Type"] == "Processing":
            for output in arguments["ProcessingOutputConfig"]["Outputs"]:
                uri = _value(output["S3Output"]["S3Uri"], definition)
                assert uri is not None
                found.append(Place(step["Name"], output["OutputName"], *_split(f"{uri}/part-0.parquet")))
        elif step["Type"] == "Training":
            output = arguments["OutputDataConfig"]["S3OutputPath"]
            found.append(
                Place(step["Name"], "model", *_split(f"{output}/{TRAINING_JOB}/output/model.tar.gz"))
            )
            found.append(
                Place(step["Name"], "output", *_split(f"{output}/{TRAINING_JOB}/output/output.tar.gz"))
            )
            if "CheckpointConfig" in arguments:
                uri = _value(arguments["CheckpointConfig"]["S3Uri"], definition)
                assert uri is not None
                found.append(Place(step["Name"], "checkpoints", *_split(f"{uri}/last.pt")))
    return found


def reads(definition: dict[str, Any]) -> list[Place]:
    """Every S3 location a job of the definition reads that is not another step's output."""
    found = []
    for step in _steps(definition):
        arguments = step["Arguments"]
        sources: list[tuple[str, Any]] = []
        if step["Type"] == "Processing":
            sources = [(i["InputName"], i["S3Input"]["S3Uri"]) for i in arguments["ProcessingInputs"]]
        elif step["Type"] == "Training":
            sources = [
                (c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"])
                for c in arguments["InputDataConfig"]
            ]
        for name, source in sources:
            uri = _value(source, definition)
            if uri is not None:
                found.append(Place(step["Name"], name, *_split(uri)))
    return found


# ---------------------------------------------------------------------------------------------- tests
def test_the_definition_writes_and_reads_where_this_test_looks(definition: dict[str, Any]) -> None:
    """Guards the collectors above: every job step writes somewhere, the input and the code are read."""
    written = {(place.step, place.what) for place in writes(definition)}
    assert {(ps.PROCESS, "train"), (ps.PROCESS, "features"), (ps.EVALUATE, "evaluation")} <= written
    assert {(ps.TRAIN, "model"), (ps.TRAIN, "checkpoints")} <= written
    read = {(place.step, place.what) for place in reads(definition)}
    assert (ps.PROCESS, "raw") in read, "the raw input (InputDataUrl's default) is read by processing"
    assert (ps.TRAIN, "code") in read


def test_every_place_the_definition_writes_is_granted(
    definition: dict[str, Any], execution_role: Policy
) -> None:
    missing = [
        place
        for place in writes(definition)
        if not (execution_role.may("s3:PutObject", place.bucket, place.key))
        or not execution_role.may("s3:AbortMultipartUpload", place.bucket, place.key)
    ]
    assert missing == [], "the execution role may not write where the definition writes"


def test_every_place_the_definition_reads_is_granted(
    definition: dict[str, Any], execution_role: Policy
) -> None:
    """Inputs and code are read as a prefix (listed, then each object fetched); step outputs are read by the
    next steps and by the pipeline itself (the evaluation report's property file)."""
    places = reads(definition) + writes(definition)
    missing = [
        place
        for place in places
        if not execution_role.may_read(place.bucket, place.key.rstrip("/") + "/sample")
        and not execution_role.may_read(place.bucket, place.key)
    ]
    unlisted = [place for place in reads(definition) if not execution_role.may_list(place.bucket, place.key)]
    assert missing == [] and unlisted == []


def test_raw_reviews_are_read_only_and_the_data_bucket_is_never_written(
    default_app: SynthesizedApp, buckets: dict[str, str], execution_role: Policy
) -> None:
    config = default_app.config
    raw = f"{config.raw_reviews_prefix}/2026/reviews.csv"
    assert execution_role.may_read(buckets["data"], raw)
    assert execution_role.may_list(buckets["data"], f"{config.raw_reviews_prefix}/")
    for key in (raw, f"{config.feature_store_prefix}/table/part.parquet", "anything/else"):
        for action in MUTATING_S3_ACTIONS:
            assert not execution_role.may(action, buckets["data"], key), f"{action} on {key}"
    assert not execution_role.may_list(buckets["data"], ""), "listing the whole data bucket"
    assert not execution_role.may_read(buckets["data"], f"{config.data_capture_prefix}/prod/x.jsonl")


def test_the_pipeline_deletes_nothing_but_its_checkpoints(
    definition: dict[str, Any], buckets: dict[str, str], execution_role: Policy
) -> None:
    """SageMaker mirrors deletions in the checkpoint folder into S3; nothing else may be deleted."""
    for place in writes(definition):
        deletable = execution_role.may("s3:DeleteObject", place.bucket, place.key)
        assert deletable == (place.what == "checkpoints"), place
    for bucket in buckets.values():
        assert not execution_role.may("s3:DeleteObjectVersion", bucket, "pipelines/x")


def test_each_steps_statement_covers_only_that_steps_prefixes(
    default_app: SynthesizedApp, definition: dict[str, Any], execution_role: Policy
) -> None:
    """The steps share one role, so this is per statement: ``Write<Step>`` lets exactly that step's places be
    written, and none of another step's."""
    by_sid = {s.get("Sid"): s for s in execution_role.statements}
    storage = pipeline_storage(default_app.config)
    places = writes(definition)
    for step in storage.steps:
        alone = Policy((by_sid[f"Write{step.step}"],))
        for place in places:
            expected = place.step == step.step
            assert alone.may("s3:PutObject", place.bucket, place.key) == expected, (step.step, place)


def test_the_write_check_would_catch_a_path_the_role_does_not_cover(
    default_app: SynthesizedApp, buckets: dict[str, str], execution_role: Policy
) -> None:
    """The checks above can fail: a training output moved out of the pipeline's prefix, or an output written
    beside another pipeline's, is not covered."""
    config = default_app.config
    assert not execution_role.may("s3:PutObject", buckets["artifacts"], f"models/{TRAINING_JOB}/model.tar.gz")
    other = (
        f"{config.pipeline_artifacts_prefix}/other-pipeline/{EXECUTION_ID}/{ps.PROCESS}/train/part-0.parquet"
    )
    assert not execution_role.may("s3:PutObject", buckets["artifacts"], other)
    assert not execution_role.may("s3:PutObject", buckets["artifacts"], "athena-results-elsewhere/x")


def test_the_build_project_gets_nothing_in_the_data_bucket(
    default_app: SynthesizedApp, buckets: dict[str, str]
) -> None:
    """The CLI on SageMaker only passes an s3:// input through; it never uploads raw data."""
    role = default_app.stacks.build.build.project.role
    assert role is not None
    build = _role_policy(default_app, role)
    raw = f"{default_app.config.raw_reviews_prefix}/reviews.csv"
    for action in ("s3:GetObject", *MUTATING_S3_ACTIONS):
        assert not build.may(action, buckets["data"], raw), action


def test_listing_model_packages_is_kept_to_the_stacks_region(default_app: SynthesizedApp) -> None:
    role = default_app.stacks.deploy.deploy.render_project.role
    assert role is not None
    render_role = _role_policy(default_app, role)
    (statement,) = [s for s in render_role.statements if s.get("Sid") == "ListModelPackages"]
    assert statement["Action"] == "sagemaker:ListModelPackages"
    assert statement["Condition"] == {"StringEquals": {"aws:RequestedRegion": REGION}}
    assert render_role.allows("sagemaker:ListModelPackages", "*", {"aws:RequestedRegion": REGION})
    assert not render_role.allows("sagemaker:ListModelPackages", "*", {"aws:RequestedRegion": "eu-west-1"})


def _policies(app: SynthesizedApp, stack: str) -> dict[str, Policy]:
    """Every identity policy of one stack (``build``, ``deploy``), by logical id."""
    resources = app.templates[getattr(app.stacks, stack).stack_name]["Resources"]
    return {
        logical_id: Policy(tuple(_substitute(render(r["Properties"]["PolicyDocument"]["Statement"]))))
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::IAM::Policy"
    }


def test_both_pipelines_keep_their_artifacts_apart_from_the_models(default_app: SynthesizedApp) -> None:
    """CDK gives every CodePipeline action's role read/write on the whole artifact store, so the store is a
    bucket of its own: the models that endpoints serve are not in it."""
    config = default_app.config
    for stack in ("build", "deploy"):
        (pipeline,) = default_app.template(stack).find_resources("AWS::CodePipeline::Pipeline").values()
        store = render(pipeline["Properties"]["ArtifactStore"]["Location"])
        assert store == f"{config.cicd_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}", stack


def test_no_deploy_role_may_change_a_model_and_only_the_build_project_writes_code(
    default_app: SynthesizedApp, buckets: dict[str, str]
) -> None:
    config = default_app.config
    model = (
        f"{config.pipeline_artifacts_prefix}/{config.pipeline_name}/models/{TRAINING_JOB}/output/model.tar.gz"
    )
    for name, policy in _policies(default_app, "deploy").items():
        for action in ("s3:PutObject", "s3:DeleteObject"):
            assert not policy.may(action, buckets["artifacts"], model), f"{name}: {action} on a model"
    build_role = default_app.stacks.build.build.project.role
    assert build_role is not None
    code = f"{config.pipeline_artifacts_prefix}/ProcessReviews-0123456789ab/source/sourcedir.tar.gz"
    writers = [
        name
        for name, policy in _policies(default_app, "build").items()
        if policy.may("s3:PutObject", buckets["artifacts"], code)
    ]
    assert writers == [_logical_id_of_default_policy(build_role)]
    build = _role_policy(default_app, build_role)
    assert not build.may("s3:PutObject", buckets["artifacts"], f"{config.athena_results_prefix}/x.csv")


def _logical_id_of_default_policy(role: Any) -> str:
    from aws_cdk import Stack

    stack = Stack.of(role)
    return str(stack.resolve(stack.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)))


def test_the_build_project_may_upload_the_code_the_definition_refers_to(
    default_app: SynthesizedApp, built: tuple[dict[str, Any], list[str]], buckets: dict[str, str]
) -> None:
    """Building the definition in CodeBuild uploads the step code (as the build project's role); every key
    the SDK wrote is one that role may write, and one the execution role may then read."""
    _, uploaded = built
    assert uploaded, "the SDK uploaded no code: the check below would prove nothing"
    role = default_app.stacks.build.build.project.role
    assert role is not None
    build = _role_policy(default_app, role)
    execution = _role_policy(default_app, default_app.stacks.registry.execution_role)
    assert [key for key in uploaded if not build.may("s3:PutObject", buckets["artifacts"], key)] == []
    assert [key for key in uploaded if not execution.may_read(buckets["artifacts"], key)] == []
