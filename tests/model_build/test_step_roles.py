"""One role per job step, named by the config, holding what the spec says the step does."""

from __future__ import annotations

import pytest

from model_build import pipeline_spec as ps
from model_build.config import ProjectConfig
from model_build.step_roles import step_role_arns, step_roles


def test_every_job_step_of_the_spec_gets_a_role_named_by_the_config() -> None:
    config = ProjectConfig(project_name="shop-reviews", environment="test")
    roles = {role.step: role for role in step_roles(config)}
    assert list(roles) == [ps.CHECK_DATA, ps.PROCESS, ps.TRAIN, ps.EVALUATE]
    assert roles[ps.PROCESS].role_name == "shop-reviews-test-job-process-reviews"
    assert roles[ps.CHECK_DATA].role_name == "shop-reviews-test-job-check-data"
    assert len({role.role_name for role in roles.values()}) == len(roles)
    assert config.execution_role_name not in {role.role_name for role in roles.values()}
    assert step_role_arns(config, "123456789012")[ps.TRAIN] == (
        "arn:aws:iam::123456789012:role/shop-reviews-test-job-train-model"
    )


def test_only_the_steps_that_read_the_input_or_put_features_may() -> None:
    roles = {role.step: role for role in step_roles(ProjectConfig())}
    assert {name for name, role in roles.items() if role.reads_input} == {ps.CHECK_DATA, ps.PROCESS}
    assert {name for name, role in roles.items() if role.puts_features} == {ps.PROCESS}
    assert roles[ps.TRAIN].writes.checkpoints and not roles[ps.EVALUATE].writes.checkpoints


def test_the_longest_sagemaker_project_fits_iams_64_characters() -> None:
    config = ProjectConfig.for_sagemaker_project("a" * 20, "p-" + "b" * 21)
    assert max(len(role.role_name) for role in step_roles(config)) <= 64


def test_a_step_name_too_long_for_a_role_name_is_an_error_naming_it() -> None:
    long_name = "EvaluateTheModelAgainstEveryBaselineWeHave"
    with pytest.raises(ValueError, match=f"{long_name}.*over IAM's 64"):
        ProjectConfig().step_role_name(long_name)
    # In the product's template the prefix is unknown until deployment: the longest project must fit.
    product = ProjectConfig.for_sagemaker_project("${Token[TOKEN.1]}", "${Token[TOKEN.2]}")
    assert product.step_role_name("EvaluateModel").endswith("-job-evaluate-model")
    with pytest.raises(ValueError, match="ProcessAllTheReviews"):
        product.step_role_name("ProcessAllTheReviews")
