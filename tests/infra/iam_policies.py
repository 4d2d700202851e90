"""Every IAM permission the synthesized templates give, as a set of atoms that two builds can be compared by.

An atom is one (principal or resource, effect, action, resource, condition) of one statement, read from the
templates: identity policies by the role (or user/group) they attach to, inline role policies, and the
resource policies of keys, buckets, topics and other resources. Statement ids, statement order and how the
CDK merged statements (``@aws-cdk/aws-iam:minimizePolicies``) do not change an atom, so a refactoring that
keeps each permission keeps the set.

``python -m tests.infra.iam_policies snapshot FILE`` synthesizes every variant (cdk.json's settings, the
checkov variant, every option with a GitHub source, the SageMaker project template with either source, and
each stage's endpoint stack) and writes the atoms; ``python -m tests.infra.iam_policies diff BEFORE AFTER``
prints the atoms only AFTER has (a wider policy) and those only BEFORE has (a narrower one); it exits 1 when
AFTER grants anything BEFORE did not. ``templates DIR`` writes every template itself, to diff two builds
whole.

``pin`` writes :data:`PINNED`: the atoms of the two apps the tests synthesize anyway (cdk.json's settings, every
option with a GitHub source), grouped by principal and statement so a review reads it as policies;
``test_iam_policies.py`` fails when the templates grant anything else or less. Run it after reviewing an
intended IAM change, and commit the file with the change.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.infra.conftest import ALL_OPTIONS_CONTEXT, REPO_ROOT, publish, render, synthesize

PINNED = Path(__file__).with_name("iam_policies.pinned.json")
PINNED_VARIANTS = {"default": None, "all-options-github": ALL_OPTIONS_CONTEXT}
"""The apps the session fixtures ``default_app`` and ``all_options_app`` synthesize."""
GITHUB = {key: ALL_OPTIONS_CONTEXT[key] for key in ("codeConnectionArn", "repositoryOwner", "repositoryName")}


def checkov_variant(makefile: Path = REPO_ROOT / "Makefile") -> dict[str, str]:
    """The settings `make checkov` synthesizes a second time: the Makefile's ``CHECKOV_VARIANT_CONTEXT``
    (``-c key=value`` pairs, as the CDK CLI passes them: strings)."""
    text = makefile.read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("CHECKOV_VARIANT_CONTEXT :=")]
    words = shlex.split(line.split(":=", 1)[1])
    if len(words) % 2 or any(flag != "-c" for flag in words[::2]):
        raise ValueError(f"{makefile}: CHECKOV_VARIANT_CONTEXT is not a list of -c key=value: {words}")
    return dict(pair.split("=", 1) for pair in words[1::2])


Atom = tuple[str, str, str, str, str, str]
"""(variant/stack/owner, effect, action, resource or NotResource, principal, condition as JSON)."""

_IDENTITY_POLICIES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
_ATTACHMENTS = ("Roles", "Users", "Groups")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    rendered = render(value)
    return rendered if isinstance(rendered, str) else json.dumps(rendered, sort_keys=True)


def _documents(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(owner, policy document) for every policy in ``template``: identity policies by the principal they
    attach to (their own logical id when they attach to none here), resource policies by their resource."""
    resources = template.get("Resources", {})
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] in _IDENTITY_POLICIES:
            owners = [_text(ref) for key in _ATTACHMENTS for ref in properties.get(key, [])] or [logical_id]
            for owner in owners:
                yield owner, properties["PolicyDocument"]
        for policy in properties.get("Policies", []) if resource["Type"].startswith("AWS::IAM::") else []:
            yield f"${{{logical_id}}}", policy["PolicyDocument"]
        for key in ("AssumeRolePolicyDocument", "KeyPolicy", "PolicyDocument"):
            if key in properties and resource["Type"] not in _IDENTITY_POLICIES:
                yield f"${{{logical_id}}}.{key}", properties[key]


def atoms(name: str, template: Mapping[str, Any]) -> set[Atom]:
    """The atoms of every policy in ``template``, owners prefixed with ``name``."""
    found: set[Atom] = set()
    for owner, document in _documents(template):
        for statement in _as_list(document.get("Statement", [])):
            actions = statement.get("Action", statement.get("NotAction"))
            action_key = "Action" if "Action" in statement else "NotAction"
            resource_key = next((key for key in ("Resource", "NotResource") if key in statement), "")
            principal = _text(statement.get("Principal", statement.get("NotPrincipal", "")))
            condition = _text(statement.get("Condition", {}))
            for action in _as_list(actions):
                for resource in _as_list(statement[resource_key]) if resource_key else [None]:
                    found.add(
                        (
                            f"{name}/{owner}",
                            statement["Effect"],
                            f"{action_key} {action}",
                            f"{resource_key} {_text(resource)}" if resource_key else "no Resource",
                            principal,
                            condition,
                        )
                    )
    return found


def _variant_templates(outdir: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(variant/stack, template) for every template the project synthesizes or renders."""
    for variant, context in (*PINNED_VARIANTS.items(), ("checkov-variant", checkov_variant())):
        app = synthesize(outdir / variant, context)
        for stack, template in app.templates.items():
            yield f"{variant}/{stack}", template
    for variant, context in (("project-template", None), ("project-template-github", GITHUB)):
        published = publish(outdir / variant, context)
        yield f"{variant}/portfolio", published.portfolio
        yield f"{variant}/product", published.product
    yield from _endpoint_templates(outdir / "endpoints")


def _endpoint_templates(outdir: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    from infra.endpoint_template import render_stage
    from model_build.config import ProjectConfig
    from model_deploy.aws.render import MonitorInputs, RenderInputs
    from model_deploy.stage_config import load_stages

    inputs = RenderInputs(
        data_bucket_name="review-sentiment-dev-data-123456789012-us-east-1",
        encryption_key_arn="arn:aws:kms:us-east-1:123456789012:key/6f1c3f0e-2b7a-4d7e-9d5c-1a2b3c4d5e6f",
        artifacts_bucket_name="review-sentiment-dev-artifacts-123456789012-us-east-1",
    )
    monitor = MonitorInputs(
        "s3://review-sentiment-dev-artifacts-123456789012-us-east-1/pipelines/x/e1/EvaluateModel/evaluation/baseline",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.6.0-transformers5.5.3-cpu-py312",
    )
    package = "arn:aws:sagemaker:us-east-1:123456789012:model-package/review-sentiment-dev-models/3"
    for stage_name, stage in load_stages().items():
        for updating in (False, True):
            path = render_stage(
                ProjectConfig(),
                stage,
                package,
                inputs,
                outdir / f"{stage_name}-{updating}",
                updating=updating,
                monitor_inputs=monitor,
            )
            yield f"endpoint/{stage_name}/updating={updating}", json.loads(path.read_text())


def pinned_form(found: Iterable[Atom]) -> dict[str, dict[str, list[str]]]:
    """Atoms as ``{owner: {"<effect> <resource> [principal] [if condition]": [actions]}}``, sorted: a policy
    per principal, one entry per resource, as a reviewer reads them."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for owner, effect, action, resource, principal, condition in sorted(found):
        key = " ".join(
            part
            for part in (
                effect,
                resource,
                principal and f"to {principal}",
                condition != "{}" and f"if {condition}",
            )
            if part
        )
        grouped.setdefault(owner, {}).setdefault(key, []).append(action)
    return grouped


def pinned() -> dict[str, dict[str, list[str]]]:
    return json.loads(PINNED.read_text()) if PINNED.exists() else {}


def all_atoms(outdir: Path) -> set[Atom]:
    return {atom for name, template in _variant_templates(outdir) for atom in atoms(name, template)}


def _load(path: Path) -> set[Atom]:
    return {tuple(atom) for atom in json.loads(path.read_text())}


def _print(title: str, found: Iterable[Atom]) -> None:
    found = sorted(found)
    print(f"{title}: {len(found)}")
    for atom in found:
        print("  " + " | ".join(atom))


def main(argv: list[str]) -> int:
    match argv:
        case ["snapshot", output]:
            with tempfile.TemporaryDirectory(prefix="iam-policies-") as outdir:
                found = all_atoms(Path(outdir))
            Path(output).write_text(json.dumps(sorted(found), indent=0) + "\n")
            print(f"{len(found)} atoms written to {output}")
            return 0
        case ["pin"]:
            with tempfile.TemporaryDirectory(prefix="iam-policies-") as outdir:
                found = {
                    atom
                    for variant, context in PINNED_VARIANTS.items()
                    for stack, template in synthesize(Path(outdir) / variant, context).templates.items()
                    for atom in atoms(f"{variant}/{stack}", template)
                }
            PINNED.write_text(json.dumps(pinned_form(found), indent=1) + "\n")
            print(f"{len(found)} atoms pinned in {PINNED}")
            return 0
        case ["templates", output]:
            with tempfile.TemporaryDirectory(prefix="iam-policies-") as outdir:
                for name, template in _variant_templates(Path(outdir)):
                    path = Path(output) / (name.replace("/", "__") + ".json")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(template, indent=1, sort_keys=True) + "\n")
            return 0
        case ["diff", before_path, after_path]:
            before, after = _load(Path(before_path)), _load(Path(after_path))
            _print("only after (wider)", after - before)
            _print("only before (narrower)", before - after)
            return 1 if after - before else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
