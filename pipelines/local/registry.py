"""The local Model Registry: SageMaker Model Package Group semantics in one SQLite file.

Each group holds versions 1, 2, 3...; each version has an approval status (``PendingManualApproval``,
``Approved``, ``Rejected``), the model artifact URI, the content types it serves, its evaluation metrics and
its lineage (pipeline execution, parameters, input data hash, git commit). Every change emits an
EventBridge-shaped ``SageMaker Model Package State Change`` event (:mod:`pipelines.local.events`).

Several processes may register at once: versions are allocated inside ``BEGIN IMMEDIATE`` transactions, which
SQLite serialises, so two registrations never get the same version and none is lost.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from model_build.pipeline_spec import MLFLOW_RUN_PARAMETER
from pipelines.local import sqlite_store
from pipelines.local.events import EventLog, Subscriber, model_package_state_change
from pipelines.local.workspace import LOCAL_ACCOUNT, Workspace

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name TEXT PRIMARY KEY,
    creation_time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_packages (
    group_name TEXT NOT NULL REFERENCES model_package_groups (name),
    version INTEGER NOT NULL CHECK (version > 0),
    approval_status TEXT NOT NULL CHECK (approval_status IN ('PendingManualApproval', 'Approved', 'Rejected')),
    approval_description TEXT,
    description TEXT NOT NULL,
    creation_time TEXT NOT NULL,
    last_modified_time TEXT NOT NULL,
    model_data_url TEXT NOT NULL,
    content_types TEXT NOT NULL,
    response_types TEXT NOT NULL,
    inference_instance_types TEXT NOT NULL,
    metrics TEXT NOT NULL,
    metrics_report_uri TEXT,
    lineage TEXT NOT NULL,
    PRIMARY KEY (group_name, version)
);
CREATE TABLE IF NOT EXISTS approval_history (
    group_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    approval_status TEXT NOT NULL,
    note TEXT,
    changed_at TEXT NOT NULL,
    FOREIGN KEY (group_name, version) REFERENCES model_packages (group_name, version)
);
"""


class ApprovalStatus(StrEnum):
    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


ALLOWED_TRANSITIONS: dict[ApprovalStatus, set[ApprovalStatus]] = {
    ApprovalStatus.PENDING: {ApprovalStatus.APPROVED, ApprovalStatus.REJECTED},
    ApprovalStatus.APPROVED: {ApprovalStatus.REJECTED},
    ApprovalStatus.REJECTED: set(),
}
"""A rejected version stays rejected: register a new one instead, so an approval always has fresh lineage."""


class RegistryError(Exception):
    """A request the registry refuses, with the reason and what to do instead."""


@dataclass(frozen=True)
class Lineage:
    """Where a model version comes from."""

    execution_id: str
    execution_arn: str
    parameters: dict[str, Any]
    input_data_url: str
    input_data_sha256: str
    code_sha256: str
    git_commit: str | None
    data_report_uri: str | None = None
    """The data check's report (schema, quality, pre-training bias): ``ModelMetrics.Bias.PreTrainingReport``."""
    data_check: dict[str, str] = field(default_factory=dict)
    """Figures of that report (metadata key -> value as text), as SageMaker's ``CustomerMetadataProperties``."""
    mlflow_run_id: str | None = None
    """The execution's MLflow run (``pipelines experiments`` shows it), as the version's ``MlflowRunId``."""


@dataclass(frozen=True)
class ModelPackage:
    group: str
    version: int
    arn: str
    approval_status: ApprovalStatus
    approval_description: str | None
    description: str
    creation_time: str
    last_modified_time: str
    model_data_url: str
    content_types: list[str]
    response_types: list[str]
    inference_instance_types: list[str]
    metrics: dict[str, Any]
    metrics_report_uri: str | None
    lineage: Lineage
    history: list[dict[str, Any]] = field(default_factory=list)

    def metric(self, name: str) -> float | None:
        """``metrics.<name>.value`` of the evaluation report, the shape the pipeline's condition reads."""
        value = self.metrics.get("metrics", {}).get(name, {})
        return value.get("value") if isinstance(value, dict) else None

    def scalar_metrics(self, short: bool = False) -> dict[str, float]:
        """The evaluation report's scalar metrics (``metrics.<name>.value``); ``short``: accuracy and F1 only."""
        metrics = self.metrics.get("metrics", {})
        return {
            name: value["value"]
            for name, value in metrics.items()
            if isinstance(value, dict)
            and "value" in value
            and (not short or name == "accuracy" or "f1" in name)
        }

    def baseline(self) -> tuple[str, float, float] | None:
        """(best baseline's name, its f1_macro, the model's margin over it), when evaluation reported them."""
        best = self.metrics.get("best_baseline")
        margin = self.metrics.get("f1_macro_margin_over_best_baseline", {}).get("value")
        if isinstance(best, dict):
            best_f1 = best.get("f1_macro", {}).get("value")
            if isinstance(best_f1, int | float) and isinstance(margin, int | float):
                return str(best.get("name")), float(best_f1), float(margin)
        return None

    def champion(self) -> dict[str, Any] | None:
        """What evaluation said of the champion: ``champion_check`` (outcome, message, margin) with the
        champion's ARN and macro-F1; None for a version evaluated before there was a champion check."""
        check = self.metrics.get("champion_check")
        if not isinstance(check, dict):
            return None
        scored = self.metrics.get("champion", {})
        return {
            **check,
            "model_package_arn": scored.get("model_package_arn"),
            "f1_macro": scored.get("f1_macro", {}).get("value"),
        }

    def describe(self) -> dict[str, Any]:
        """The shape of SageMaker's DescribeModelPackage response (and of the event's ``detail``)."""
        return {
            "ModelPackageGroupName": self.group,
            "ModelPackageVersion": self.version,
            "ModelPackageArn": self.arn,
            "ModelPackageDescription": self.description,
            "CreationTime": _epoch_ms(self.creation_time),
            "LastModifiedTime": _epoch_ms(self.last_modified_time),
            "InferenceSpecification": {
                "Containers": [{"ModelDataUrl": self.model_data_url}],
                "SupportedContentTypes": self.content_types,
                "SupportedResponseMIMETypes": self.response_types,
                "SupportedRealtimeInferenceInstanceTypes": self.inference_instance_types,
                "SupportedTransformInstanceTypes": self.inference_instance_types,
            },
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CertifyForMarketplace": False,
            "ModelApprovalStatus": str(self.approval_status),
            **({"ApprovalDescription": self.approval_description} if self.approval_description else {}),
            "MetadataProperties": {
                "GeneratedBy": self.lineage.execution_arn,
                **({"CommitId": self.lineage.git_commit} if self.lineage.git_commit else {}),
            },
            "ModelMetrics": {
                **(
                    {
                        "ModelQuality": {
                            "Statistics": {
                                "ContentType": "application/json",
                                "S3Uri": self.metrics_report_uri,
                            }
                        }
                    }
                    if self.metrics_report_uri
                    else {}
                ),
                **(
                    {
                        "Bias": {
                            "PreTrainingReport": {
                                "ContentType": "application/json",
                                "S3Uri": self.lineage.data_report_uri,
                            }
                        }
                    }
                    if self.lineage.data_report_uri
                    else {}
                ),
            },
            "CustomerMetadataProperties": {
                "ExecutionId": self.lineage.execution_id,
                "InputDataUrl": self.lineage.input_data_url,
                "InputDataSha256": self.lineage.input_data_sha256,
                "CodeSha256": self.lineage.code_sha256,
                "PipelineParameters": json.dumps(self.lineage.parameters, sort_keys=True),
                **self.lineage.data_check,
                **({MLFLOW_RUN_PARAMETER: self.lineage.mlflow_run_id} if self.lineage.mlflow_run_id else {}),
            },
            "ModelPackageType": "Versioned",
        }


@dataclass(frozen=True)
class Champion:
    """The version a new one is compared with, and why it is the one."""

    package: ModelPackage
    reason: str


def change_approval(
    workspace: Workspace,
    version: int,
    status: ApprovalStatus | str,
    note: str | None = None,
    subscribers: Sequence[Subscriber] = (),
) -> tuple[ModelPackage, list[str]]:
    """Approve or reject a version of the project's group and deliver its event to ``subscribers`` (the
    command line and the page give the local rollout): what ``registry approve`` and the Approve button do.

    Returns the changed version and one message per subscriber that failed (the change itself stands)."""
    with ModelRegistry(
        workspace.registry_path, workspace.config.region, EventLog(workspace, subscribers)
    ) as registry:
        package = registry.update_approval(workspace.config.model_package_group_name, version, status, note)
        return package, list(registry.delivery_failures)


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ModelRegistry:
    """One registry file. Open it per use; every method is one transaction."""

    def __init__(self, path: Path, region: str, events: EventLog | None = None, account: str = LOCAL_ACCOUNT):
        self.path = path
        self.region = region
        self.account = account
        self.events = events
        self.delivery_failures: list[str] = []
        try:
            self._connection = sqlite_store.connect(path)
            with self._transaction() as connection:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise RegistryError(
                        f"{path} has registry schema version {version}; this code reads version {SCHEMA_VERSION}"
                    )
                if version == 0:
                    # One statement at a time: executescript() would commit the transaction first.
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise RegistryError(
                f"{path} is not a readable model registry database ({error}). Move it aside to start an "
                "empty registry; the model artifacts it pointed to are still in the run folder."
            ) from None

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return sqlite_store.transaction(self._connection)

    def arn(self, group: str, version: int) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:model-package/{group}/{version}"

    # --- writing
    def register(
        self,
        group: str,
        model_data_url: str,
        lineage: Lineage,
        *,
        approval_status: ApprovalStatus | str = ApprovalStatus.PENDING,
        content_types: Sequence[str],
        response_types: Sequence[str],
        inference_instance_types: Sequence[str],
        metrics: dict[str, Any],
        metrics_report_uri: str | None = None,
        description: str = "",
    ) -> ModelPackage:
        """Create the next version of ``group`` (creating the group on first use) and emit its event."""
        status = self._status(approval_status)
        now = _now()
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO model_package_groups (name, creation_time) VALUES (?, ?)", (group, now)
            )
            version = connection.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_packages WHERE group_name = ?", (group,)
            ).fetchone()[0]
            connection.execute(
                "INSERT INTO model_packages VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    group,
                    version,
                    status,
                    description,
                    now,
                    now,
                    model_data_url,
                    json.dumps(list(content_types)),
                    json.dumps(list(response_types)),
                    json.dumps(list(inference_instance_types)),
                    json.dumps(metrics),
                    metrics_report_uri,
                    json.dumps(lineage.__dict__),
                ),
            )
            connection.execute(
                "INSERT INTO approval_history VALUES (?, ?, ?, ?, ?)",
                (group, version, status, "registered", now),
            )
        return self._emit(self.describe(group, version))

    def update_approval(
        self, group: str, version: int, status: ApprovalStatus | str, note: str | None = None
    ) -> ModelPackage:
        """Approve or reject a version, with an optional note (SageMaker's ``ApprovalDescription``)."""
        new = self._status(status)
        with self._transaction() as connection:
            current = ApprovalStatus(self._row(connection, group, version)["approval_status"])
            if new == current:
                raise RegistryError(f"{group} version {version} is already {current}")
            if new not in ALLOWED_TRANSITIONS[current]:
                advice = " Register a new version instead." if current == ApprovalStatus.REJECTED else ""
                raise RegistryError(
                    f"{group} version {version} is {current}; it cannot become {new}.{advice}"
                )
            now = _now()
            connection.execute(
                "UPDATE model_packages SET approval_status = ?, approval_description = ?, last_modified_time = ? "
                "WHERE group_name = ? AND version = ?",
                (new, note, now, group, version),
            )
            connection.execute(
                "INSERT INTO approval_history VALUES (?, ?, ?, ?, ?)", (group, version, new, note, now)
            )
        return self._emit(self.describe(group, version))

    def approve(self, group: str, version: int, note: str | None = None) -> ModelPackage:
        return self.update_approval(group, version, ApprovalStatus.APPROVED, note)

    def reject(self, group: str, version: int, note: str | None = None) -> ModelPackage:
        return self.update_approval(group, version, ApprovalStatus.REJECTED, note)

    # --- reading
    def describe(self, group: str, version: int) -> ModelPackage:
        row = self._row(self._connection, group, version)
        history = self._connection.execute(
            "SELECT approval_status, note, changed_at FROM approval_history "
            "WHERE group_name = ? AND version = ? ORDER BY rowid",
            (group, version),
        ).fetchall()
        return self._package(row, [dict(entry) for entry in history])

    def list(self, group: str, status: ApprovalStatus | str | None = None) -> list[ModelPackage]:
        """Every version of ``group``, oldest first; only those with ``status`` if given."""
        query, arguments = "SELECT * FROM model_packages WHERE group_name = ?", [group]
        if status is not None:
            query, arguments = query + " AND approval_status = ?", [*arguments, self._status(status)]
        rows = self._connection.execute(query + " ORDER BY version", arguments).fetchall()
        return [self._package(row) for row in rows]

    def latest(
        self, group: str, status: ApprovalStatus | str = ApprovalStatus.APPROVED
    ) -> ModelPackage | None:
        """The newest version with ``status``: what a deployment of the group should serve."""
        packages = self.list(group, status)
        return packages[-1] if packages else None

    def champion(self, group: str, served_arn: str | None) -> Champion | None:
        """The model a new version must not be worse than: the one production serves (``served_arn``, what
        the prod endpoint's state says), else the newest approved version; None when there is neither."""
        if served_arn:
            served = self.by_arn(group, served_arn)
            if served is not None:
                return Champion(served, "serves production")
        newest = self.latest(group)
        return Champion(newest, "the newest Approved version") if newest is not None else None

    def by_arn(self, group: str, arn: str) -> ModelPackage | None:
        """The version of ``group`` with this ARN (as :meth:`arn` spells it), or None."""
        prefix, _, version = arn.rpartition("/")
        if prefix != self.arn(group, 0).rpartition("/")[0] or not version.isdigit():
            return None
        try:
            return self.describe(group, int(version))
        except RegistryError:
            return None

    def groups(self) -> builtins.list[str]:
        return [
            row[0] for row in self._connection.execute("SELECT name FROM model_package_groups ORDER BY name")
        ]

    # --- plumbing
    def _row(self, connection: sqlite3.Connection, group: str, version: int) -> sqlite3.Row:
        row = connection.execute(
            "SELECT * FROM model_packages WHERE group_name = ? AND version = ?", (group, version)
        ).fetchone()
        if row is None:
            versions = [
                v
                for (v,) in connection.execute(
                    "SELECT version FROM model_packages WHERE group_name = ? ORDER BY version", (group,)
                )
            ]
            known = (
                f"its versions are {versions[0]} to {versions[-1]}" if versions else "it has no versions yet"
            )
            raise RegistryError(f"model package group {group} has no version {version}: {known}")
        return row

    def _package(
        self, row: sqlite3.Row, history: builtins.list[dict[str, Any]] | None = None
    ) -> ModelPackage:
        return ModelPackage(
            group=row["group_name"],
            version=row["version"],
            arn=self.arn(row["group_name"], row["version"]),
            approval_status=ApprovalStatus(row["approval_status"]),
            approval_description=row["approval_description"],
            description=row["description"],
            creation_time=row["creation_time"],
            last_modified_time=row["last_modified_time"],
            model_data_url=row["model_data_url"],
            content_types=json.loads(row["content_types"]),
            response_types=json.loads(row["response_types"]),
            inference_instance_types=json.loads(row["inference_instance_types"]),
            metrics=json.loads(row["metrics"]),
            metrics_report_uri=row["metrics_report_uri"],
            lineage=Lineage(**json.loads(row["lineage"])),
            history=history or [],
        )

    @staticmethod
    def _status(status: ApprovalStatus | str) -> ApprovalStatus:
        try:
            return ApprovalStatus(status)
        except ValueError:
            raise RegistryError(
                f"{status!r} is not a model approval status; use one of {', '.join(ApprovalStatus)}"
            ) from None

    def _emit(self, package: ModelPackage) -> ModelPackage:
        if self.events is not None:
            event = model_package_state_change(package.describe(), self.account, self.region)
            self.delivery_failures.extend(self.events.publish(event))
        return package
