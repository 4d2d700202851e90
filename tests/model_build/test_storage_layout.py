"""The pipeline's S3 layout is derived from the config and the spec (the role's grants are made from it)."""

from __future__ import annotations

import dataclasses

import pytest

from model_build import pipeline_spec as ps
from model_build.config import ProjectConfig
from model_build.storage_layout import listing, pipeline_storage, served_outputs, served_prefixes, step_writes


def test_each_job_step_writes_under_its_own_prefix_of_this_pipeline() -> None:
    config = ProjectConfig(project_name="shop-reviews", environment="test")
    writes = {step.step: step for step in step_writes(config)}
    assert list(writes) == [ps.CHECK_DATA, ps.PROCESS, ps.TRAIN, ps.EVALUATE], (
        "condition, register and fail write nothing"
    )
    root = f"{config.pipeline_artifacts_prefix}/shop-reviews-test-build"
    assert writes[ps.CHECK_DATA].outputs == (f"{root}/*/{ps.CHECK_DATA}/report/*",)
    assert writes[ps.PROCESS].outputs == tuple(
        f"{root}/*/{ps.PROCESS}/{name}/*" for name in ("train", "validation", "test", "rejects", "features")
    )
    # The package the register step registers goes under packages/, which an endpoint's model reads (and not
    # under models/, where the training role writes).
    assert writes[ps.EVALUATE].outputs == (
        f"{root}/*/{ps.EVALUATE}/evaluation/*",
        f"{root}/packages/*/{ps.EVALUATE}/{ps.PACKAGE_OUTPUT}/*",
    )
    assert served_outputs() == {(ps.EVALUATE, ps.PACKAGE_OUTPUT)}
    assert served_prefixes(config) == (f"{root}/models", f"{root}/packages")
    assert writes[ps.TRAIN].outputs == (f"{root}/models/*",)
    assert writes[ps.TRAIN].checkpoints == (f"{config.pipeline_artifacts_prefix}/checkpoints/*",)
    assert all(not step.checkpoints for name, step in writes.items() if name != ps.TRAIN)


def test_reads_are_the_raw_reviews_and_the_pipelines_artifacts() -> None:
    """No job queries Athena, so neither the offline store nor Athena's results are read or written."""
    config = ProjectConfig()
    storage = pipeline_storage(config)
    assert storage.data_reads == (f"{config.raw_reviews_prefix}/*",)
    assert storage.artifact_reads == (f"{config.pipeline_artifacts_prefix}/*",)
    assert all(key.startswith(f"{config.pipeline_artifacts_prefix}/") for key in storage.artifact_writes)
    assert storage.writes_of(ps.TRAIN).checkpoints
    with pytest.raises(KeyError, match=ps.REGISTER):
        storage.writes_of(ps.REGISTER)
    assert listing(("reviews/raw",)) == ("reviews/raw", "reviews/raw/*")


def test_a_training_step_without_checkpoints_gets_no_checkpoint_folder() -> None:
    train = dataclasses.replace(ps.PIPELINE.step(ps.TRAIN), checkpoints=False)
    spec = dataclasses.replace(
        ps.PIPELINE, steps=tuple(train if s.name == ps.TRAIN else s for s in ps.PIPELINE.steps)
    )
    (training,) = [step for step in step_writes(ProjectConfig(), spec) if step.step == ps.TRAIN]
    assert training.checkpoints == ()


def test_a_step_kind_it_does_not_know_is_an_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class TransformStep:
        name: str = "BatchScore"
        kind: str = "Transform"

        def references(self) -> tuple[()]:
            return ()

    spec = dataclasses.replace(ps.PIPELINE, steps=(*ps.PIPELINE.steps, TransformStep()))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'BatchScore' of kind 'Transform'"):
        step_writes(ProjectConfig(), spec)
