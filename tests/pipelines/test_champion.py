"""The local runner finds the champion when an execution starts: the version the prod endpoint serves, else
the newest Approved one, else none; ``none`` goes without, an ARN names one. The execution records it among
its parameters, and the evaluation step gets the file that stands for its ``model.tar.gz``.

The registry holds fake versions (a few bytes for a model): what is tested is which one is chosen and how it
reaches the step, not the scoring (``tests/model_build/test_evaluate_champion.py``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from model_build import pipeline_spec as ps
from model_deploy.local.state import EndpointRecord, EndpointStore
from model_deploy.stage_config import STAGES
from pipelines.local.executions import Status
from pipelines.local.registry import Lineage, ModelRegistry
from pipelines.local.workspace import Workspace
from pipelines.runners.local import LocalRunner

PROBE = """
import argparse, json, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--arn"); parser.add_argument("--url"); parser.add_argument("--output-data")
args = parser.parse_args()
url = pathlib.Path(args.url) if args.url else None
seen = {"arn": args.arn, "url": args.url, "content": url.read_text() if url else None}
(pathlib.Path(args.output_data) / "seen.json").write_text(json.dumps(seen))
"""


def probe_spec() -> ps.PipelineSpec:
    """The pipeline's parameters, and one step that reports the champion arguments it was given."""
    probe = ps.ProcessingStep(
        name="Probe",
        script="probe.py",
        instance_type="ml.m5.large",
        inputs=(),
        outputs=(ps.ProcessingOutput("seen", f"{ps.PROCESSING_OUTPUT}/seen"),),
        arguments={
            "--arn": ps.Param(ps.CHAMPION_PARAMETER),
            "--url": ps.Param(ps.CHAMPION_URL_PARAMETER),
            "--output-data": f"{ps.PROCESSING_OUTPUT}/seen",
        },
    )
    return ps.PipelineSpec(parameters=ps.PIPELINE.parameters, steps=(probe,))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    steps = tmp_path / "repo" / "model_build" / "steps"
    steps.mkdir(parents=True)
    (steps / "probe.py").write_text(PROBE)
    return tmp_path / "repo"


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path / "run")


def add_version(workspace: Workspace, name: str, status: str) -> str:
    """Register a fake version whose model.tar.gz holds ``name``; returns its ARN."""
    url = f"s3://{workspace.artifacts_bucket}/models/{name}/model.tar.gz"
    path = workspace.local_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(name)
    lineage = Lineage("e", "arn:e", {}, "", "", "", None)
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        package = registry.register(
            workspace.config.model_package_group_name,
            url,
            lineage,
            approval_status=status,
            content_types=["application/json"],
            response_types=["application/json"],
            inference_instance_types=["ml.m5.large"],
            metrics={"metrics": {"f1_macro": {"value": 0.5}}},
        )
    return package.arn


def serve_in_prod(workspace: Workspace, arn: str) -> None:
    name = workspace.config.endpoint_name(STAGES[-1])
    version = int(arn.rsplit("/", 1)[1])
    EndpointStore(workspace.endpoints_dir).save({name: EndpointRecord(name, STAGES[-1], version, arn)})


def run(workspace: Workspace, repo: Path, **overrides: str) -> tuple[dict[str, object], dict[str, str]]:
    """The execution's recorded parameters and what the step saw."""
    console = io.StringIO()
    record = LocalRunner(workspace, probe_spec(), repo_root=repo, console=console).run(overrides)
    assert record.status == Status.SUCCEEDED, record.failure_reason
    seen = workspace.local_path(record.step("Probe").outputs["seen"]) / "seen.json"
    return record.parameters, json.loads(seen.read_text())


def test_no_champion_without_an_approved_or_served_version(workspace: Workspace, repo: Path) -> None:
    add_version(workspace, "pending", "PendingManualApproval")
    recorded, seen = run(workspace, repo)
    assert recorded[ps.CHAMPION_PARAMETER] == "" and seen == {"arn": "", "url": "", "content": None}


def test_the_version_prod_serves_is_the_champion_else_the_newest_approved(
    workspace: Workspace, repo: Path
) -> None:
    first = add_version(workspace, "first", "Approved")
    second = add_version(workspace, "second", "Approved")
    add_version(workspace, "third", "PendingManualApproval")

    recorded, seen = run(workspace, repo)
    assert recorded[ps.CHAMPION_PARAMETER] == second and seen["content"] == "second"
    assert str(recorded[ps.CHAMPION_URL_PARAMETER]).startswith("s3://")  # recorded as the registry has it

    serve_in_prod(workspace, first)  # production still serves the older one: that is what to beat
    recorded, seen = run(workspace, repo)
    assert recorded[ps.CHAMPION_PARAMETER] == first and seen == {
        "arn": first,
        "url": str(workspace.local_path(str(recorded[ps.CHAMPION_URL_PARAMETER]))),
        "content": "first",
    }


def test_none_or_a_named_version_overrides_and_an_unknown_one_is_refused(
    workspace: Workspace, repo: Path
) -> None:
    first = add_version(workspace, "first", "Approved")
    add_version(workspace, "second", "Approved")
    recorded, seen = run(workspace, repo, **{ps.CHAMPION_PARAMETER: "none"})
    assert recorded[ps.CHAMPION_URL_PARAMETER] == "" and seen["arn"] == "none"
    recorded, seen = run(workspace, repo, **{ps.CHAMPION_PARAMETER: first})
    assert seen["content"] == "first"
    # A model alone (no registered version), as a local file: compared with as it is.
    other = workspace.root / "elsewhere.tar.gz"
    other.write_text("elsewhere")
    recorded, seen = run(workspace, repo, **{ps.CHAMPION_URL_PARAMETER: str(other)})
    assert seen == {"arn": "", "url": str(other), "content": "elsewhere"}
    missing = first.rsplit("/", 1)[0] + "/9"
    with pytest.raises(ValueError, match=r"no such version .* 'none' runs without a champion"):
        LocalRunner(workspace, probe_spec(), repo_root=repo, console=io.StringIO()).run(
            {ps.CHAMPION_PARAMETER: missing}
        )


def test_a_new_champion_misses_the_evaluation_cache(workspace: Workspace, repo: Path) -> None:
    add_version(workspace, "first", "Approved")
    runner = LocalRunner(workspace, probe_spec(), repo_root=repo, console=io.StringIO())
    assert runner.run().step("Probe").cache_hit is None
    assert runner.run().step("Probe").cache_hit is not None
    add_version(workspace, "second", "Approved")
    assert runner.run().step("Probe").cache_hit is None
