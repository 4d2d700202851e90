"""Every synthesized template passes cfn-lint, and cdk-nag's AwsSolutions pack finds nothing unacknowledged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cfnlint.api import lint

from infra.app_builder import build_app, load_from_context
from infra.nag import PACK, add_nag_checks
from tests.infra.conftest import SynthesizedApp, cdk_json_context


def test_every_template_passes_cfn_lint_without_errors(any_app: SynthesizedApp) -> None:
    """Linted for the config's region (cfn-lint's default is us-east-1 too): SageMaker Feature Store and
    Pipelines are not offered in every region, which cfn-lint reports per region when asked for all."""
    assert len(any_app.templates) == 6
    for name, template in any_app.templates.items():
        path = any_app.outdir / f"{name}.template.json"
        assert json.loads(path.read_text()) == template, "lint the file cdk deploy would upload"
        matches = lint(path.read_text(), regions=[any_app.config.region])
        errors = [match for match in matches if match.rule.id.startswith("E")]
        assert errors == [], f"{name}: " + "\n".join(str(match) for match in errors)


def test_the_apps_nag_wiring_stops_an_unacknowledged_finding(tmp_path: Path) -> None:
    """The fixtures synthesize only if nothing is unacknowledged; that means something only if the app as
    ``build_app`` wires it runs the checks: one unacknowledged bucket beside its stacks fails synthesis."""
    app = App(context=cdk_json_context(), outdir=str(tmp_path))
    config, settings = load_from_context(app)
    build_app(app, config, settings)
    s3.Bucket(Stack(app, "Extra"), "Unacknowledged")
    with pytest.raises(RuntimeError, match="ValidationFailed") as error:
        app.synth()
    assert "AwsSolutions::AwsSolutions-S1" in str(error.value)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    paths = {
        construct["constructPath"]
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }
    assert paths == {"Extra/Unacknowledged/Resource"}, "only the extra bucket is unacknowledged"


def test_every_acknowledgment_has_a_written_reason(any_app: SynthesizedApp) -> None:
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {
        rule_id: reason
        for construct in any_app.app.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
        for rule_id, reason in entry.data.items()
    }
    assert acknowledged, "no acknowledgment found: the metadata key or the nag wiring changed"
    for rule_id, reason in acknowledged.items():
        assert rule_id.startswith(f"{PACK}::AwsSolutions-"), rule_id
        assert len(reason.split()) >= 8, f"{rule_id}: the reason must say why, not just that ({reason!r})"


def test_nag_does_stop_an_insecure_bucket(tmp_path: Path) -> None:
    """The same wiring on a bare bucket fails synthesis: the checks above can fail."""
    app = App(outdir=str(tmp_path))
    s3.Bucket(Stack(app, "Insecure"), "Bucket")
    add_nag_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed") as error:
        app.synth()
    assert "AwsSolutions::AwsSolutions-S1" in str(error.value)
    assert "AwsSolutions::AwsSolutions-S10" in str(error.value)
