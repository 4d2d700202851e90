"""The IAM the templates grant is the pinned IAM: a wider or narrower policy fails until it is reviewed and
pinned again (``python -m tests.infra.iam_policies pin``), so every IAM change shows as a diff of
``iam_policies.pinned.json``. Both sides are read from synthesized templates, none typed here."""

from __future__ import annotations

import copy
from typing import Any

from tests.infra.conftest import SynthesizedApp
from tests.infra.iam_policies import PINNED, Atom, atoms, pinned, pinned_form


def _atoms(app: SynthesizedApp, variant: str) -> set[Atom]:
    return {atom for stack, t in app.templates.items() for atom in atoms(f"{variant}/{stack}", t)}


def test_the_templates_grant_exactly_the_pinned_policies(
    default_app: SynthesizedApp, all_options_app: SynthesizedApp
) -> None:
    found = pinned_form(_atoms(default_app, "default") | _atoms(all_options_app, "all-options-github"))
    expected = pinned()
    lines = {(owner, key, a) for owner, keys in found.items() for key, acts in keys.items() for a in acts}
    pinned_lines = {(o, k, a) for o, keys in expected.items() for k, acts in keys.items() for a in acts}
    wider, narrower = sorted(lines - pinned_lines), sorted(pinned_lines - lines)
    assert not wider and not narrower, (
        f"the templates differ from {PINNED.name}: review, then `python -m tests.infra.iam_policies pin`\n"
        + "\n".join([*(f"+ {line}" for line in wider[:40]), *(f"- {line}" for line in narrower[:40])])
    )


def test_atoms_ignore_statement_ids_order_and_merging_but_see_a_wider_resource(
    default_app: SynthesizedApp,
) -> None:
    """What the pin compares: splitting a statement into one per action, reordering, dropping its Sid keep
    the atoms; widening one resource changes them."""
    name, template = next(iter(default_app.templates.items()))
    policy = next(r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy")
    reshaped: dict[str, Any] = copy.deepcopy(template)
    document = next(r for r in reshaped["Resources"].values() if r["Type"] == "AWS::IAM::Policy")[
        "Properties"
    ]["PolicyDocument"]
    document["Statement"] = [
        {key: value for key, value in {**statement, "Action": action}.items() if key != "Sid"}
        for statement in reversed(policy["Properties"]["PolicyDocument"]["Statement"])
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    ]
    assert atoms(name, reshaped) == atoms(name, template)
    document["Statement"][0]["Resource"] = "*"
    assert atoms(name, reshaped) != atoms(name, template)
