"""Every synthesized template passes cfn-lint, and cdk-nag's AwsSolutions pack finds nothing unacknowledged.

checkov runs over the templates outside pytest (``make checkov``, in its own virtualenv); what it may skip is in
``.checkov.yaml``, and the last tests here hold each skip to a written reason and to the facts it relies on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cfnlint.api import lint

from infra.app_builder import build_app, load_from_context
from infra.nag import PACK, add_nag_checks
from tests.infra.conftest import REPO_ROOT, SynthesizedApp, cdk_json_context, render

CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"
# The handler CDK adds for auto_delete_objects (retainData=false); its logical id is fixed by CDK.
AUTO_DELETE_HANDLER = "CustomS3AutoDeleteObjectsCustomResourceProviderHandler"


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


def checkov_skips() -> dict[str, str]:
    """``.checkov.yaml``'s skipped check ids, each with the comment written right above it."""
    lines = CHECKOV_CONFIG.read_text().splitlines()
    start = lines.index("skip-check:")
    skips: dict[str, str] = {}
    comment: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        text = line.strip()
        if text.startswith("#"):
            comment.append(text.lstrip("# "))
        elif match := re.fullmatch(r"- (CKV2?_[A-Z0-9]+_\d+)", text):
            skips[match.group(1)] = " ".join(comment)
            comment = []
        else:
            raise AssertionError(f".checkov.yaml: unexpected line under skip-check: {line!r}")
    return skips


def test_every_checkov_skip_says_why() -> None:
    skips = checkov_skips()
    assert skips, "no skip-check list found in .checkov.yaml"
    for check_id, reason in skips.items():
        assert len(reason.split()) >= 12, f"{check_id}: the reason must say why the check does not apply"


def test_the_facts_the_checkov_skips_rely_on(any_app: SynthesizedApp) -> None:
    """CKV_AWS_115/116/117 are skipped because the Lambda functions are CDK's auto-delete handler and the
    retrain-on-drift functions, which reserve no concurrency (new accounts' quotas refuse it) and have a
    dead-letter queue of their own; and
    CKV_AWS_18 because the only bucket without access logging is the access-logs bucket."""
    assert {"CKV_AWS_18", "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"} <= set(checkov_skips())
    functions = any_app.resources("AWS::Lambda::Function")
    handlers = {name for name in functions if name.split("/")[1].startswith(AUTO_DELETE_HANDLER)}
    retain = any_app.app.node.try_get_context("retainData") in (None, True, "true")
    assert bool(handlers) != retain, "the handler comes with retainData=false, and only then"
    others = {name: functions[name] for name in set(functions) - handlers}
    assert others, "the monitoring stack's retrain-on-drift function"
    for name, function in others.items():
        assert "RetrainOnDrift" in name, name
        assert "ReservedConcurrentExecutions" not in function["Properties"], name
        assert "TargetArn" in function["Properties"]["DeadLetterConfig"], name
        assert "VpcConfig" not in function["Properties"], name
    unlogged = [
        render(bucket["Properties"]["BucketName"])
        for bucket in any_app.resources("AWS::S3::Bucket").values()
        if "LoggingConfiguration" not in bucket["Properties"]
    ]
    assert unlogged == [f"{any_app.config.access_logs_bucket_prefix}-${{AWS::AccountId}}-${{AWS::Region}}"]
