"""The template's context settings: which roles see it, its version and provider."""

from __future__ import annotations

import pytest

from infra.project_template_settings import ProjectTemplateSettings

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-1"
OTHER = "arn:aws:iam::123456789012:role/data-scientists"


def test_roles_from_a_list_or_a_comma_separated_string() -> None:
    assert ProjectTemplateSettings.from_context(
        {"sagemakerExecutionRoleArns": [ROLE, OTHER]}
    ).execution_role_arns == (
        ROLE,
        OTHER,
    )
    assert ProjectTemplateSettings.from_context(
        {"sagemakerExecutionRoleArns": f" {ROLE} ,{OTHER},"}
    ).execution_role_arns == (ROLE, OTHER)


def test_no_roles_means_no_template() -> None:
    settings = ProjectTemplateSettings.from_context({})
    assert not settings.enabled
    assert (settings.product_version, settings.provider_name) == ("v1", "Platform team")
    assert ProjectTemplateSettings.from_context({"sagemakerExecutionRoleArns": ""}).enabled is False


@pytest.mark.parametrize(
    ("context", "problem"),
    [
        ({"sagemakerExecutionRoleArns": ["AmazonSageMaker-ExecutionRole"]}, "is not an IAM role ARN"),
        ({"sagemakerExecutionRoleArns": [ROLE.replace("role/", "user/")]}, "is not an IAM role ARN"),
        ({"sagemakerExecutionRoleArns": {"a": ROLE}}, "expected a list of role ARNs"),
        ({"sagemakerExecutionRoleArns": [ROLE], "projectTemplateVersion": "v 2"}, "projectTemplateVersion"),
        ({"sagemakerExecutionRoleArns": [ROLE], "projectTemplateProvider": " "}, "projectTemplateProvider"),
    ],
)
def test_bad_values_name_their_context_key(context: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ProjectTemplateSettings.from_context(context)
