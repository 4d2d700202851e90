"""cdk-nag (v3) wiring: the AwsSolutions checks, and acknowledging a finding with its written reason.

cdk-nag v3 reports through CDK's policy validation: any finding not acknowledged stops ``cdk synth``.
Findings are acknowledged one by one (``AwsSolutions-IAM5[Action::s3:GetObject*]``), never a whole rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"

GRANT_WILDCARD_ACTIONS = (
    "s3:GetObject*",
    "s3:GetBucket*",
    "s3:List*",
    "s3:DeleteObject*",
    "s3:Abort*",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)
"""The actions CDK's ``grant_read_write`` / ``grant_encrypt_decrypt`` spell with a suffix wildcard (IAM5)."""


def add_nag_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(scope: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()) -> None:
    """Acknowledge ``rule`` on ``scope`` and its children, for each of ``findings`` or for the rule itself.

    A finding is spelled as cdk-nag spells it (``Action::s3:GetObject*``, ``Resource::<Bucket.Arn>/*``); use
    :func:`nag_spelling` for values that contain tokens.
    """
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a written reason")
    ids = [f"{PACK}::{rule}[{finding}]" for finding in findings] or [f"{PACK}::{rule}"]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in ids))


def nag_spelling(scope: IConstruct, value: str) -> str:
    """How cdk-nag spells a value with tokens in a finding: ``<LogicalId.Arn>``, ``<AWS::Partition>``, ...

    Only for tokens of ``scope``'s own stack (pseudo parameters, its resources); references to other stacks
    are replaced at synthesis and cannot be spelled in advance.
    """
    return _render(Stack.of(scope).resolve(value))


def _render(node: object) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(_render(part) for part in parts)
        if key == "Fn::ImportValue":
            return f"<{_render(arg)}>"
        if key in ("Fn::Select", "Fn::Split", "Fn::FindInMap"):  # other functions it writes as compact JSON
            return json.dumps(node, separators=(",", ":"))
    raise ValueError(f"cannot spell {node!r} as cdk-nag does")
