"""Context settings of the SageMaker project template (``infra/stacks/project_template_stack.py``).

Read apart from :class:`infra.settings.InfraSettings`: they concern the publishing of the template, once per
account, not how one deployment behaves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class ProjectTemplateSettings:
    execution_role_arns: tuple[str, ...] = ()
    """Context ``sagemakerExecutionRoleArns``: the Studio execution roles whose users see the template."""
    product_version: str = "v1"
    """Context ``projectTemplateVersion``: the product version Studio shows."""
    provider_name: str = "Platform team"
    """Context ``projectTemplateProvider``: who owns the template, shown in Studio."""

    def __post_init__(self) -> None:
        for arn in self.execution_role_arns:
            if not _ROLE_ARN.match(arn):
                raise ValueError(
                    f"context sagemakerExecutionRoleArns: {arn!r} is not an IAM role ARN "
                    "(arn:aws:iam::<account>:role/<name>)"
                )
        if not _VERSION.match(self.product_version):
            raise ValueError(
                f"context projectTemplateVersion={self.product_version!r}: use up to 100 letters, digits, '.', '_', '-'"
            )
        if not self.provider_name.strip():
            raise ValueError("context projectTemplateProvider is empty")

    @property
    def enabled(self) -> bool:
        """The stack is added to the app only when someone is to see the template."""
        return bool(self.execution_role_arns)

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | Callable[[str], Any]) -> ProjectTemplateSettings:
        """``sagemakerExecutionRoleArns`` is a list in cdk.json, or comma-separated with ``-c``."""
        get = context if callable(context) else context.get
        arns = get("sagemakerExecutionRoleArns") or ()
        if isinstance(arns, str):
            arns = [arn for arn in arns.split(",")]
        if not isinstance(arns, (list, tuple)) or not all(isinstance(arn, str) for arn in arns):
            raise ValueError(f"context sagemakerExecutionRoleArns={arns!r}: expected a list of role ARNs")
        return cls(
            execution_role_arns=tuple(arn.strip() for arn in arns if arn.strip()),
            product_version=str(get("projectTemplateVersion") or "v1"),
            provider_name=str(get("projectTemplateProvider") or "Platform team"),
        )
