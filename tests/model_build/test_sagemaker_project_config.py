"""A SageMaker project's config: its id is the environment, its buckets are named from the id alone."""

from __future__ import annotations

import pytest

from model_build.config import (
    SAGEMAKER_PROJECT_ID_VARIABLE,
    SAGEMAKER_PROJECT_NAME_MAX_LENGTH,
    ProjectConfig,
    load_config,
)
from model_deploy.aws.names import endpoint_role_name, endpoint_stack_name

BUCKET_SUFFIX = len("-123456789012-ap-southeast-4")


def test_the_id_is_the_environment_and_names_the_buckets() -> None:
    config = ProjectConfig.for_sagemaker_project("reviews", "p-ab12cd34ef56")
    assert config.environment == "p-ab12cd34ef56"
    assert config.prefix == "reviews-p-ab12cd34ef56"
    assert config.model_package_group_name == "reviews-p-ab12cd34ef56-models"
    assert config.data_bucket_prefix == "p-ab12cd34ef56-data"
    assert config.glue_database_name == "reviews_p_ab12cd34ef56"
    assert config.tags == {"project": "reviews", "environment": "p-ab12cd34ef56"}


def test_a_plain_deployment_keeps_its_names() -> None:
    config = ProjectConfig(project_name="acme", environment="prod")
    assert config.sagemaker_project_id is None
    assert config.data_bucket_prefix == "acme-prod-data"


def test_the_longest_project_name_and_id_fit_every_limit() -> None:
    config = ProjectConfig.for_sagemaker_project("a" * SAGEMAKER_PROJECT_NAME_MAX_LENGTH, "p-" + "b" * 21)
    buckets = [config.data_bucket_prefix, config.artifacts_bucket_prefix, config.access_logs_bucket_prefix]
    assert max(len(b) + BUCKET_SUFFIX for b in buckets) <= 63
    # Ids are 12 characters after "p-" today; the other names are checked with today's length.
    config = ProjectConfig.for_sagemaker_project("a" * SAGEMAKER_PROJECT_NAME_MAX_LENGTH, "p-" + "b" * 12)
    iam = [config.execution_role_name, *(endpoint_role_name(config, s) for s in ("staging", "prod"))]
    assert max(map(len, iam)) <= 64
    sagemaker = [config.feature_group_name, config.model_package_group_name, config.endpoint_name("staging")]
    assert max(map(len, sagemaker)) <= 63
    # An endpoint's model names add "-<version>-<digest>" (up to 4 + 8 here) to the endpoint's name.
    assert len(config.endpoint_name("staging")) + len("-9999-12345678") <= 63
    assert len(endpoint_stack_name(config, "staging")) <= 128
    assert len(config.approval_rule_name) <= 64


@pytest.mark.parametrize(
    ("name", "project_id", "problem"),
    [
        ("my-reviews", "p-ab12cd34ef56", "cannot name a SageMaker project"),
        ("Reviews", "p-ab12cd34ef56", "is not a valid name"),
        ("a" * (SAGEMAKER_PROJECT_NAME_MAX_LENGTH + 1), "p-ab12cd34ef56", "cannot name a SageMaker project"),
        ("reviews", "ab12cd34ef56", "is not a valid name|is not a SageMaker project id"),
        ("reviews", "p-AB12", "is not a valid name|is not a SageMaker project id"),
    ],
)
def test_bad_names_and_ids_are_refused(name: str, project_id: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ProjectConfig.for_sagemaker_project(name, project_id)


def test_the_id_must_be_the_environment() -> None:
    with pytest.raises(ValueError, match="must also be the environment"):
        ProjectConfig(project_name="reviews", environment="dev", sagemaker_project_id="p-ab12cd34ef56")


def test_load_config_reads_the_project_id_the_build_projects_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_PROJECT_NAME", "reviews")
    monkeypatch.setenv("MLOPS_ENVIRONMENT", "p-ab12cd34ef56")
    monkeypatch.setenv(SAGEMAKER_PROJECT_ID_VARIABLE, "p-ab12cd34ef56")
    assert load_config(region="us-east-1") == ProjectConfig.for_sagemaker_project("reviews", "p-ab12cd34ef56")
    monkeypatch.delenv(SAGEMAKER_PROJECT_ID_VARIABLE)
    assert load_config(region="us-east-1").data_bucket_prefix == "reviews-p-ab12cd34ef56-data"


def test_cloudformation_parameters_are_left_to_their_patterns() -> None:
    """In the product's template the names are CDK tokens: checked by the parameters' AllowedPattern when a
    project is created, not here; any other value is still checked."""
    config = ProjectConfig.for_sagemaker_project("${Token[TOKEN.101]}", "${Token[TOKEN.102]}")
    assert config.prefix == "${Token[TOKEN.101]}-${Token[TOKEN.102]}"
    assert config.data_bucket_prefix == "${Token[TOKEN.102]}-data"
    with pytest.raises(ValueError, match="is not a valid name"):
        ProjectConfig.for_sagemaker_project("${Token[TOKEN.101]}", "P-1")
