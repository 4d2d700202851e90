"""What the local endpoints serve, kept in the run folder so that a restarted server serves the same.

``<run dir>/endpoints/endpoints.json`` holds each endpoint's stage, the model package it serves and its
deployment history; only the endpoint server writes it, atomically, and only once a new version has taken
the traffic, so the file never describes a half-swapped endpoint. ``server.json`` beside it says where the
running server listens (its pid, URL and the token its control routes require); it exists only while the
server runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.local.executions import process_exists
from pipelines.local.files import write_json_atomic

STATE_FILE = "endpoints.json"
SERVER_FILE = "server.json"
PRODUCTION_VARIANT = "AllTraffic"
"""The variant name every endpoint keeps across versions (SageMaker's deployment guardrails require a stable one)."""
CANDIDATE_VARIANT = "Candidate"
"""A version being tried before it takes the traffic answers requests that name this ``TargetVariant``."""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Deployment:
    """One entry of an endpoint's history: a version that took the traffic, or one that was refused."""

    time: str
    version: int
    model_package_arn: str
    outcome: str
    """``Deployed`` (took the traffic), ``RolledBack`` (an older version took it back, ``reason`` says why) or
    ``Failed`` (never did; the previous version kept serving)."""
    reason: str = ""


DEPLOYED, ROLLED_BACK, FAILED = "Deployed", "RolledBack", "Failed"


@dataclass
class EndpointRecord:
    name: str
    stage: str
    version: int | None = None
    model_package_arn: str | None = None
    model_data_url: str | None = None
    history: list[Deployment] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointRecord:
        history = [Deployment(**entry) for entry in data.get("history", [])]
        return cls(**{**data, "history": history})


class EndpointStore:
    """``endpoints.json``: read by anyone, written by the endpoint server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STATE_FILE

    def load(self) -> dict[str, EndpointRecord]:
        if not self.path.is_file():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return {name: EndpointRecord.from_dict(data) for name, data in document["endpoints"].items()}
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{self.path} is not a readable endpoint state file ({error}); move it aside to start over"
            ) from None

    def save(self, records: dict[str, EndpointRecord]) -> None:
        write_json_atomic(
            self.path, {"endpoints": {name: asdict(record) for name, record in records.items()}}
        )


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    url: str
    token: str
    started: str

    @classmethod
    def read(cls, folder: Path) -> ServerInfo | None:
        """The running server's address, or None when no server runs (a stale file is ignored)."""
        path = folder / SERVER_FILE
        try:
            info = cls(**json.loads(path.read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None
        return info if process_exists(info.pid) else None

    def write(self, folder: Path) -> None:
        write_json_atomic(folder / SERVER_FILE, asdict(self))
        os.chmod(folder / SERVER_FILE, 0o600)  # the token guards the control routes

    @staticmethod
    def remove(folder: Path, pid: int) -> None:
        path = folder / SERVER_FILE
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
                path.unlink()
        except (FileNotFoundError, json.JSONDecodeError):
            pass
