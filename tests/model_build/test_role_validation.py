"""The definition builds for a caller allowed to simulate IAM policies, whose step roles are minimal.

SDK v3's ``ModelTrainer`` validates its role with ``iam:SimulatePrincipalPolicy`` and refuses one without
the VPC and CloudWatch permissions our step roles deliberately lack. The suite's ``conftest`` turns that
off through ``SAGEMAKER_VALIDATE_ROLE``; here the variable is unset and the SDK's check raises, so the
test fails unless the builder itself turns validation off.
"""

from __future__ import annotations

import json
import os

import pytest

from model_build.config import load_config
from tests.model_build.codebuild_environment import ENVIRONMENT, mocked_aws


class ValidationRan(AssertionError):
    pass


def _refuse(*args: object, **kwargs: object) -> None:
    raise ValidationRan("the SDK validated a role while the definition was built")


def test_the_definition_builds_without_the_sdks_role_validation(monkeypatch):
    from sagemaker.core.helper import iam_role_resolver

    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    monkeypatch.delenv("SAGEMAKER_VALIDATE_ROLE", raising=False)
    monkeypatch.setattr(iam_role_resolver, "_evaluate_permissions", _refuse)
    monkeypatch.setattr(iam_role_resolver, "_role_trusts_service", _refuse)
    config = load_config()
    with mocked_aws() as session:
        settings = aws_settings(config, session, ENVIRONMENT)
        sagemaker_session = pipeline_session(settings, config, session)
        definition = json.loads(build_pipeline(settings, sagemaker_session).definition())
    training = [step for step in definition["Steps"] if step["Type"] == "Training"]
    assert training, "the pipeline has a training step"
    assert all(step["Arguments"]["RoleArn"] in settings.step_role_arns.values() for step in training)
    # The switch is scoped to the build: afterwards the SDK validates roles as it would (so the patch holds).
    assert "SAGEMAKER_VALIDATE_ROLE" not in os.environ
    with pytest.raises(ValidationRan):
        iam_role_resolver.resolve_and_validate_role(settings.role_arn, "training", sagemaker_session)
