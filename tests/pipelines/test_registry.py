"""The local Model Registry: versions, approval transitions, errors, concurrency, and its events."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from pipelines.local import events
from pipelines.local.events import EventLog, read_events
from pipelines.local.registry import ApprovalStatus, Lineage, ModelRegistry, RegistryError
from pipelines.local.workspace import Workspace

RECORDED_EVENT = Path(__file__).with_name("events") / "model_package_state_change.json"
"""The example of this event in the AWS documentation ("Events that Amazon SageMaker sends to EventBridge")."""

GROUP = "review-sentiment-dev-models"
LINEAGE = Lineage(
    execution_id="20250101T000000-abcdef",
    execution_arn="arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/20250101T000000-abcdef",
    parameters={"Epochs": "1"},
    input_data_url="data/reviews_sample.csv",
    input_data_sha256="0" * 64,
    code_sha256="1" * 64,
    git_commit="abc123",
)


def register(registry: ModelRegistry, **kwargs: object):
    return registry.register(
        GROUP,
        "s3://bucket/model.tar.gz",
        LINEAGE,
        content_types=["application/json"],
        response_types=["application/json"],
        inference_instance_types=["ml.m5.large"],
        metrics={"metrics": {"accuracy": {"value": 0.8}}},
        metrics_report_uri="s3://bucket/evaluation.json",
        **kwargs,
    )


@pytest.fixture
def received() -> list[dict]:
    """The events the ``registry`` fixture's subscriber received."""
    return []


@pytest.fixture
def registry(tmp_path: Path, received: list[dict]):
    log = EventLog(Workspace.open(tmp_path), [lambda event, workspace: received.append(event)])
    with ModelRegistry(tmp_path / "registry.db", "us-east-1", log) as opened:
        yield opened


def test_versions_count_up_per_group_with_sagemaker_arns(registry):
    assert [register(registry).version for _ in range(3)] == [1, 2, 3]
    other = registry.register(
        "other-group",
        "s3://b/m.tar.gz",
        LINEAGE,
        content_types=[],
        response_types=[],
        inference_instance_types=[],
        metrics={},
    )
    assert other.version == 1
    package = registry.describe(GROUP, 2)
    assert package.arn == f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/2"
    assert package.approval_status == ApprovalStatus.PENDING
    assert package.metric("accuracy") == 0.8
    assert package.lineage == LINEAGE
    assert registry.groups() == ["other-group", GROUP]


def test_approval_transitions(registry):
    for _ in range(3):
        register(registry)
    assert registry.approve(GROUP, 1, "looks good").approval_description == "looks good"
    assert registry.reject(GROUP, 1, "regression found").approval_status == ApprovalStatus.REJECTED
    assert registry.reject(GROUP, 2).approval_status == ApprovalStatus.REJECTED
    with pytest.raises(RegistryError, match="version 2 is Rejected; it cannot become Approved"):
        registry.approve(GROUP, 2)
    assert registry.approve(GROUP, 3).approval_status == ApprovalStatus.APPROVED
    with pytest.raises(RegistryError, match="already Approved"):
        registry.approve(GROUP, 3)
    assert [p.version for p in registry.list(GROUP, "Approved")] == [3]
    assert registry.latest(GROUP).version == 3
    history = registry.describe(GROUP, 1).history
    assert [(h["approval_status"], h["note"]) for h in history] == [
        ("PendingManualApproval", "registered"),
        ("Approved", "looks good"),
        ("Rejected", "regression found"),
    ]


def test_clear_errors(registry, tmp_path):
    register(registry)
    with pytest.raises(RegistryError, match="has no version 7: its versions are 1 to 1"):
        registry.approve(GROUP, 7)
    with pytest.raises(RegistryError, match="not a model approval status"):
        registry.update_approval(GROUP, 1, "Maybe")
    with pytest.raises(RegistryError, match="not a model approval status"):
        register(registry, approval_status="approved")
    corrupted = tmp_path / "corrupted.db"
    corrupted.write_bytes(b"this is not SQLite " * 500)
    with pytest.raises(RegistryError, match=r"corrupted\.db is not a readable model registry database"):
        ModelRegistry(corrupted, "us-east-1")


def _register_many(arguments: tuple[str, int]) -> list[int]:
    path, count = arguments
    versions = []
    for _ in range(count):
        with ModelRegistry(Path(path), "us-east-1", EventLog(Workspace.open(Path(path).parent))) as registry:
            versions.append(register(registry).version)
    return versions


def test_concurrent_registrations_from_several_processes_get_distinct_versions(tmp_path):
    path = tmp_path / "registry.db"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_register_many, [(str(path), 8)] * 4)
    versions = sorted(version for result in results for version in result)
    assert versions == list(range(1, 33))
    with ModelRegistry(path, "us-east-1") as registry:
        assert len(registry.list(GROUP)) == 32
    assert len(read_events(tmp_path / "events")) == 32  # one event per registration, none lost


def _shape(value: object) -> object:
    """Keys and value types, recursively: what a rule or a subscriber relies on."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _missing(actual: object, expected: object, path: str = "") -> list[str]:
    """Where ``actual`` lacks a key of ``expected``'s shape or has another type there (extra keys are fine)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '.'}: {type(actual).__name__}, expected an object"]
        return [
            problem
            for key, value in expected.items()
            for problem in (
                _missing(actual[key], value, f"{path}.{key}") if key in actual else [f"{path}.{key}: missing"]
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: {type(actual).__name__}, expected a list"]
        return _missing(actual[0], expected[0], f"{path}[0]") if expected and actual else []
    return [] if _shape(actual) == expected else [f"{path}: {_shape(actual)}, expected {expected}"]


def test_event_has_the_shape_of_the_recorded_eventbridge_event(registry, received, tmp_path):
    package = register(registry)
    registry.reject(GROUP, package.version, "not good enough")
    recorded = json.loads(RECORDED_EVENT.read_text())
    created, rejected = received
    for event in (created, rejected):
        assert event.keys() == recorded.keys()
        envelope = {k: v for k, v in event.items() if k != "detail"}
        assert _shape(envelope) == _shape({k: v for k, v in recorded.items() if k != "detail"})
        for key in ("version", "detail-type", "source"):
            assert event[key] == recorded[key]
        # Every field of the recorded detail is there with the same type, except the container image, which
        # the local mode does not have (the model runs in this Python, not in a framework image).
        expected = _shape(recorded["detail"])
        expected["InferenceSpecification"]["Containers"] = [{"ModelDataUrl": "str"}]
        assert _missing(event["detail"], expected) == []
        assert event["resources"] == [event["detail"]["ModelPackageArn"]]
    assert created["detail"]["ModelApprovalStatus"] == "PendingManualApproval"
    assert rejected["detail"]["ModelApprovalStatus"] == "Rejected"
    assert rejected["detail"]["ApprovalDescription"] == "not good enough"
    assert rejected["detail"]["ModelPackageVersion"] == 1
    assert read_events(tmp_path / "events") == [created, rejected]  # recorded, in order


def test_a_subscriber_gets_the_event_after_the_change_is_committed_with_the_workspace(tmp_path):
    """A subscriber may read the registry (a rollout resolves the newest approved version): the change it
    reacts to is already there, seen through the workspace it is given."""
    seen: list[tuple[str, Path]] = []

    def reads_the_registry(event: dict, workspace: Workspace) -> None:
        with ModelRegistry(workspace.registry_path, "us-east-1") as reader:
            seen.append((reader.describe(GROUP, 1).approval_status, workspace.root))

    workspace = Workspace.open(tmp_path)
    with ModelRegistry(
        workspace.registry_path, "us-east-1", EventLog(workspace, [reads_the_registry])
    ) as registry:
        register(registry)
        registry.approve(GROUP, 1)
    assert seen == [("PendingManualApproval", workspace.root), ("Approved", workspace.root)]


def record_event(event: dict, workspace: Workspace) -> None:
    """A subscriber by import path, as the deploy issue registers its own."""
    Path(event["detail"]["ModelPackageGroupName"] + ".seen").write_text(
        event["detail"]["ModelApprovalStatus"]
    )


def test_subscribers_by_import_path_and_failures_are_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(events.SUBSCRIBERS_ENV, f"{__name__}:record_event, no_such_module:handler")

    def broken(event: dict, workspace: Workspace) -> None:
        raise RuntimeError("subscriber bug")

    log = EventLog(Workspace.open(tmp_path), [broken])
    with ModelRegistry(tmp_path / "registry.db", "us-east-1", log) as registry:
        package = register(registry)
    assert package.version == 1  # the registration stands
    assert (tmp_path / f"{GROUP}.seen").read_text() == "PendingManualApproval"
    assert len(registry.delivery_failures) == 2
    assert "subscriber bug" in registry.delivery_failures[0]
    assert "no_such_module:handler cannot be loaded" in registry.delivery_failures[1]
