"""SageMaker step caching and retries, from definitions built offline (moto S3/STS) from copies of the code.

A step is a cache hit when its definition is the one of an earlier run, so the tests compare definitions:
built twice, from two checkouts in different folders, and after a change to one file.
"""

from __future__ import annotations

import io
import itertools
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from model_build import images
from model_build import pipeline_spec as ps
from model_build.code_upload import CodeSet, CodeUploads
from model_build.config import load_config
from tests.model_build.codebuild_environment import ARTIFACT_BUCKET, ENVIRONMENT, mocked_aws

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_STEPS = (ps.PROCESS, ps.TRAIN, ps.EVALUATE)


@pytest.fixture(scope="module")
def aws() -> Iterator[boto3.Session]:
    with mocked_aws() as session:
        yield session


def checkout(folder: Path) -> Path:
    """The parts of the repository a definition reads (the step code and the serving code), in ``folder``."""
    for part in (ps.STEPS_SOURCE_DIR, ps.SERVING_SOURCE_DIR):
        # symlinks=True: the serving folder's token_cut.py links to the steps folder's, as in the repository.
        shutil.copytree(
            REPO_ROOT / part, folder / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    return folder


def build(aws, root: Path = REPO_ROOT, defaults: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every step of the definition built from the checkout at ``root``, by name (branch steps included)."""
    from model_build import sagemaker_pipeline as sp

    config = load_config()
    settings = sp.aws_settings(config, aws, ENVIRONMENT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sp, "REPO_ROOT", root)
        pipeline = sp.build_pipeline(settings, sp.pipeline_session(settings, config, aws), config, defaults)
        definition = json.loads(pipeline.definition())
    steps = {}
    for step in definition["Steps"]:
        steps[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            steps.update({inner["Name"]: inner for inner in step["Arguments"].get(branch, [])})
    return steps


@pytest.fixture(scope="module")
def first(aws) -> dict[str, dict[str, Any]]:
    return build(aws)


def changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


def test_building_twice_from_two_checkouts_gives_the_same_definition(aws, first, tmp_path: Path) -> None:
    """CodeBuild checks out into a new folder every build: neither the time nor the path may show."""
    other = checkout(tmp_path / "elsewhere")
    (other / ps.STEPS_SOURCE_DIR / "__pycache__").mkdir()
    (other / ps.STEPS_SOURCE_DIR / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"machine-specific")
    assert build(aws, other) == first
    assert changed(first, build(aws)) == set()


def test_training_code_and_drivers_are_uploaded_by_content_not_by_time(first) -> None:
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in first[ps.TRAIN]["Arguments"]["InputDataConfig"]
    }
    config = load_config()
    code_root = f"s3://{ARTIFACT_BUCKET}/{config.pipeline_artifacts_prefix}/{config.pipeline_name}/code/"
    for name in ("code", "sm_drivers", "serving"):
        digest, folder = channels[name].removeprefix(code_root).strip("/").split("/")
        assert (len(digest), folder) == (16, name), channels[name]
    steps = REPO_ROOT / ps.STEPS_SOURCE_DIR
    assert f"/{CodeSet.script(steps, 'train.py', ('requirements.txt',)).digest}/code" in channels["code"]


@pytest.mark.parametrize(
    ("edited", "affected"),
    [
        # The data check and processing read the input with one reader; each step's script is its own.
        (f"{ps.STEPS_SOURCE_DIR}/reviews_csv.py", {ps.CHECK_DATA, ps.PROCESS}),
        (f"{ps.STEPS_SOURCE_DIR}/preprocess.py", {ps.PROCESS}),
        (f"{ps.STEPS_SOURCE_DIR}/splits.py", {ps.PROCESS}),
        (f"{ps.STEPS_SOURCE_DIR}/split_files.py", {ps.PROCESS}),
        (f"{ps.STEPS_SOURCE_DIR}/tokenization.py", {ps.PROCESS}),
        (f"{ps.STEPS_SOURCE_DIR}/feature_store_ingest.py", {ps.PROCESS}),
        (f"{ps.STEPS_SOURCE_DIR}/check_data.py", {ps.CHECK_DATA}),
        # Both steps read the splits with training_data; the training recipe is train.py's alone.
        (f"{ps.STEPS_SOURCE_DIR}/training_data.py", {ps.TRAIN, ps.EVALUATE}),
        (f"{ps.STEPS_SOURCE_DIR}/train.py", {ps.TRAIN}),
        (f"{ps.STEPS_SOURCE_DIR}/evaluate.py", {ps.EVALUATE}),
        (f"{ps.STEPS_SOURCE_DIR}/features.py", {ps.CHECK_DATA, ps.PROCESS, ps.TRAIN, ps.EVALUATE}),
        (f"{ps.STEPS_SOURCE_DIR}/requirements.txt", {ps.CHECK_DATA, ps.PROCESS, ps.TRAIN, ps.EVALUATE}),
        # The serving code is packed into the model by training.
        (f"{ps.SERVING_SOURCE_DIR}/inference.py", {ps.TRAIN}),
        # The text cut: processing runs it, and training packs it into the model's code/ (a link).
        (f"{ps.STEPS_SOURCE_DIR}/token_cut.py", {ps.PROCESS, ps.TRAIN}),
    ],
)
def test_a_code_change_changes_only_the_steps_that_run_that_code(
    aws, first, tmp_path: Path, edited: str, affected: set[str]
) -> None:
    root = checkout(tmp_path)
    with (root / edited).open("a", encoding="utf-8") as handle:
        handle.write("\n# an edit\n")
    assert changed(first, build(aws, root)) == affected


def test_processing_carries_the_input_datas_fingerprint_in_its_arguments(first) -> None:
    """The cache key is the arguments: the digest the runner passes makes new data a miss."""
    environment = first[ps.PROCESS]["Arguments"]["Environment"]
    assert environment == {"INPUT_DATA_FINGERPRINT": {"Get": "Parameters.InputDataFingerprint"}}
    assert ps.PIPELINE.parameter("InputDataFingerprint").fingerprint_of == "InputDataUrl"


def test_job_steps_retry_throttling_capacity_and_quota_errors_with_backoff(first) -> None:
    for name in JOB_STEPS:
        spec = ps.PIPELINE.step(name)
        assert isinstance(spec, ps.ProcessingStep | ps.TrainingStep)
        assert first[name]["RetryPolicies"] == [policy.request() for policy in spec.retries]
        assert spec.retries == ps.JOB_RETRIES
    reasons = {reason for policy in ps.JOB_RETRIES for reason in policy.on}
    assert reasons == {
        "Step.THROTTLING",
        "Step.SERVICE_FAULT",
        "SageMaker.CAPACITY_ERROR",
        "SageMaker.RESOURCE_LIMIT",
        "SageMaker.JOB_INTERNAL_ERROR",
    }
    for policy in ps.JOB_RETRIES:
        waits = policy.waits()
        assert len(waits) == policy.max_attempts and all(b == a * 2 for a, b in itertools.pairwise(waits))
    for name in (ps.CHECK, ps.REGISTER, ps.FAIL):
        assert "RetryPolicies" not in first[name]


def test_a_retry_policy_mixing_families_or_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="one family"):
        ps.RetryPolicy(("Step.THROTTLING", "SageMaker.CAPACITY_ERROR"), max_attempts=3, interval_seconds=1)
    with pytest.raises(ValueError, match="max_attempts must be 1-20"):
        ps.RetryPolicy(("Step.THROTTLING",), max_attempts=21, interval_seconds=1)


def job_images(steps: dict[str, dict[str, Any]]) -> dict[str, str]:
    register = steps[ps.REGISTER]["Arguments"]["InferenceSpecification"]["Containers"][0]["Image"]
    return {
        ps.PROCESS: steps[ps.PROCESS]["Arguments"]["AppSpecification"]["ImageUri"],
        ps.TRAIN: steps[ps.TRAIN]["Arguments"]["AlgorithmSpecification"]["TrainingImage"],
        ps.EVALUATE: steps[ps.EVALUATE]["Arguments"]["AppSpecification"]["ImageUri"],
        ps.REGISTER: register,
    }


INSTANCE_PARAMETERS = {
    ps.PROCESS: "ProcessingInstanceType",
    ps.TRAIN: "TrainingInstanceType",
    ps.EVALUATE: "ProcessingInstanceType",
    ps.REGISTER: "DeployInstanceType",
}


def test_every_image_fits_its_steps_instance_type_and_the_one_framework(first) -> None:
    for name, uri in job_images(first).items():
        images.check_fits(uri, str(ps.PIPELINE.parameter(INSTANCE_PARAMETERS[name]).default))
    assert {images.parse(uri).torch for uri in job_images(first).values()} == {images.FRAMEWORK.torch}


def test_images_follow_the_instance_types_the_definition_is_built_with(aws) -> None:
    defaults = {
        "ProcessingInstanceType": "ml.g5.xlarge",
        "TrainingInstanceType": "ml.m5.4xlarge",
        "DeployInstanceType": "ml.g5.xlarge",
    }
    built = job_images(build(aws, defaults=defaults))
    assert {name: images.parse(uri).processor for name, uri in built.items()} == {
        ps.PROCESS: "gpu",
        ps.TRAIN: "cpu",
        ps.EVALUATE: "gpu",
        ps.REGISTER: "gpu",
    }
    for name, uri in built.items():
        images.check_fits(uri, defaults[INSTANCE_PARAMETERS[name]])


def test_a_steps_code_is_its_script_what_it_imports_and_the_requirements() -> None:
    steps = REPO_ROOT / ps.STEPS_SOURCE_DIR
    always = ("requirements.txt",)
    assert CodeSet.script(steps, "preprocess.py", always).names() == (
        "arguments.py",
        "csv_rows.py",
        "feature_store_ingest.py",
        "features.py",
        "preprocess.py",
        "requirements.txt",
        "reviews_csv.py",
        "split_files.py",
        "splits.py",
        "token_cut.py",
        "tokenization.py",
    )
    assert "preprocess.py" not in CodeSet.script(steps, "check_data.py", always).names()
    evaluation = CodeSet.script(steps, "evaluate.py", always).names()
    assert "training_data.py" in evaluation and "train.py" not in evaluation
    with pytest.raises(FileNotFoundError, match="missing"):
        CodeSet.script(steps, "no_such_step.py", always)


def test_digests_and_bundles_depend_on_the_files_only(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        (folder / "pkg").mkdir(parents=True)
        (folder / "run.py").write_text("import pkg\n")
        (folder / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (two / "pkg" / "__pycache__").mkdir()
    (two / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    a, b = CodeSet.script(one, "run.py"), CodeSet.script(two, "run.py")
    assert a.names() == b.names() == ("pkg/__init__.py", "run.py")
    assert a.digest == b.digest and a.bundle() == b.bundle()
    with tarfile.open(fileobj=io.BytesIO(a.bundle())) as tar:
        assert tar.getnames() == ["pkg/__init__.py", "run.py"]
        assert {member.mtime for member in tar.getmembers()} == {0}
    (two / "pkg" / "__init__.py").write_text("VALUE = 2\n")
    assert CodeSet.script(two, "run.py").digest != a.digest
    (two / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (two / "run.py").rename(two / "main.py")
    assert CodeSet.script(two, "main.py").digest != a.digest  # a renamed file is other code


def test_uploads_land_under_the_digest(aws, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "job.py").write_text("print('hi')\n")
    code = CodeSet.folder(tmp_path / "code")
    s3 = aws.client("s3")
    uploads = CodeUploads(s3, ARTIFACT_BUCKET, "some/prefix")
    assert uploads.folder(code, "code") == f"s3://{ARTIFACT_BUCKET}/some/prefix/{code.digest}/code"
    assert s3.get_object(Bucket=ARTIFACT_BUCKET, Key=f"some/prefix/{code.digest}/code/job.py")["Body"].read()
    bundle = uploads.bundle(code)
    assert bundle == f"s3://{ARTIFACT_BUCKET}/some/prefix/{code.digest}/bundle/sourcedir.tar.gz"
    body = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=bundle.split("/", 3)[3])["Body"].read()
    assert body == code.bundle()
