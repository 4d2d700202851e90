"""Execution records: what ran, with which parameters, how each step went, where its outputs and logs are.

One JSON file per execution (``executions/<id>/execution.json``), rewritten atomically after every change, so
a reader sees either the previous state or the next one. Statuses are SageMaker's: an execution is
``Executing``, ``Succeeded`` or ``Failed``; so is each step. A runner that is interrupted (Ctrl-C, SIGTERM)
marks the execution ``Failed`` with the reason; a runner that is killed outright cannot, so a record still
``Executing`` whose process is gone is read as ``Failed`` (and rewritten as such).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.local.files import write_json_atomic

if TYPE_CHECKING:
    from pipelines.local.workspace import Workspace

RECORD_FILE = "execution.json"


class Status(StrEnum):
    EXECUTING = "Executing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class StepRecord:
    name: str
    type: str
    """Processing, Training, Condition, RegisterModel or Fail: SageMaker's step types."""
    status: Status = Status.EXECUTING
    started: str = field(default_factory=now)
    ended: str | None = None
    duration_s: float | None = None
    cache_key: str | None = None
    cache_hit: str | None = None
    """The execution whose outputs were reused, when the step was a cache hit."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Output name -> S3 URI (``pipelines.local.workspace.Workspace.local_path`` gives the folder)."""
    log: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    """What a step type adds: the condition's outcome, the registered package, a job's retry policies."""
    failure_reason: str | None = None
    attempt_count: int = 1
    """SageMaker's ``AttemptCount``. A local job runs once: the retry policies it records (as SageMaker's
    definition holds them) name throttling, capacity, quota and internal errors of SageMaker, which a local
    run cannot meet; its own failures are the script's (SageMaker's ``AlgorithmError``), not retried there."""

    def finish(self, status: Status, failure_reason: str | None = None) -> None:
        self.status = status
        self.failure_reason = failure_reason
        self.ended = now()
        self.duration_s = round(
            (datetime.fromisoformat(self.ended) - datetime.fromisoformat(self.started)).total_seconds(), 3
        )


@dataclass
class ExecutionRecord:
    id: str
    pipeline: str
    parameters: dict[str, Any]
    status: Status = Status.EXECUTING
    created: str = field(default_factory=now)
    ended: str | None = None
    failure_reason: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Branch steps whose condition took the other branch: described in the pipeline, not run."""
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    def step(self, name: str) -> StepRecord:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"execution {self.id} has no step {name!r}; it ran {[s.name for s in self.steps]}")

    def pictures(self, workspace: Workspace) -> list[Path]:
        """The PNG files the steps wrote into their output folders (confusion matrix, training curves)."""
        found = []
        for step in self.steps:
            for uri in step.outputs.values():
                if uri.startswith("s3://") and (folder := workspace.local_path(uri)).is_dir():
                    found.extend(sorted(folder.glob("*.png")))
        return found

    @property
    def duration_s(self) -> float | None:
        if self.ended is None:
            return None
        return (datetime.fromisoformat(self.ended) - datetime.fromisoformat(self.created)).total_seconds()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecutionRecord:
        steps = [StepRecord(**{**step, "status": Status(step["status"])}) for step in data.pop("steps")]
        return cls(**{**data, "status": Status(data["status"])}, steps=steps)


class ExecutionNotFound(LookupError):
    pass


class ExecutionStore:
    """The ``executions/`` folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, execution_id: str) -> Path:
        return self.root / execution_id

    def create(self, pipeline: str, parameters: dict[str, Any]) -> ExecutionRecord:
        # Sortable by time, unique across concurrent runs (SageMaker's ids are 12 random characters).
        execution_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        record = ExecutionRecord(execution_id, pipeline, parameters)
        self.save(record)
        return record

    def save(self, record: ExecutionRecord) -> None:
        write_json_atomic(self.folder(record.id) / RECORD_FILE, asdict(record))

    def load(self, execution_id: str) -> ExecutionRecord:
        """An execution by id, or by a unique prefix of one, or ``latest``."""
        ids = self.ids()
        if execution_id == "latest" and ids:
            execution_id = ids[-1]
        matches = [known for known in ids if known.startswith(execution_id)]
        if len(matches) != 1:
            detail = f"{len(matches)} match" if matches else "none matches"
            raise ExecutionNotFound(
                f"no single execution {execution_id!r} in {self.root} ({detail}); "
                "`python -m pipelines executions` lists them"
            )
        path = self.folder(matches[0]) / RECORD_FILE
        try:
            record = ExecutionRecord.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as error:
            raise ExecutionNotFound(f"{path} is not a readable execution record: {error}") from error
        return self._reconcile(record)

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(path.parent.name for path in self.root.glob(f"*/{RECORD_FILE}"))

    def list(self) -> list[ExecutionRecord]:
        """Every readable execution, oldest first."""
        records = []
        for execution_id in self.ids():
            try:
                records.append(self.load(execution_id))
            except ExecutionNotFound:
                continue  # a record being created by another run right now, or damaged by hand
        return records

    def _reconcile(self, record: ExecutionRecord) -> ExecutionRecord:
        if (
            record.status != Status.EXECUTING
            or record.host != socket.gethostname()
            or process_exists(record.pid)
        ):
            return record
        reason = f"the runner (process {record.pid}) ended without finishing the execution"
        for step in record.steps:
            if step.status == Status.EXECUTING:
                step.finish(Status.FAILED, reason)
        record.status, record.failure_reason, record.ended = Status.FAILED, reason, now()
        self.save(record)
        return record


def process_exists(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
