"""EventBridge-shaped events from the local Model Registry, delivered to local subscribers.

On AWS, every change of a model package's state (its creation, an approval, a rejection) becomes an
EventBridge event of detail-type ``SageMaker Model Package State Change``; the deploy pipeline is a rule on it.
Locally, the registry builds the same event once its change is committed, writes it to ``<run dir>/events/``
(so none is lost, even if a subscriber fails) and calls the subscribers its caller gave it: the command line
and the web page subscribe the local rollout (``model_deploy.local.rollout.on_model_package_event``), as the
deploy stack subscribes the deploy pipeline on AWS. A ``"module:function"`` path in
``$MLOPS_EVENT_SUBSCRIBERS`` (comma-separated) adds yours, in every process.

A subscriber gets the event, exactly as an EventBridge target (a Lambda function) would, and the workspace
whose registry changed. Its failure is reported, never raised: the registry change it reacts to has happened.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.local.files import write_json_atomic
from pipelines.local.workspace import Workspace

DETAIL_TYPE = "SageMaker Model Package State Change"
SOURCE = "aws.sagemaker"

Event = dict[str, Any]
Subscriber = Callable[[Event, Workspace], None]
"""Called with each event and the workspace whose registry emitted it."""
SUBSCRIBERS_ENV = "MLOPS_EVENT_SUBSCRIBERS"


class SubscriberError(Exception):
    """A subscriber's expected failure (a rollout that was refused): reported by its message, no traceback."""


def model_package_state_change(detail: dict[str, Any], account: str, region: str) -> Event:
    """The EventBridge envelope around a model package's description (``detail``)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [detail["ModelPackageArn"]],
        "detail": detail,
    }


def _resolve(path: str) -> Subscriber:
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"event subscriber {path!r} is not of the form 'module:function'")
    return getattr(importlib.import_module(module_name), attribute)


def _named(subscribers: Sequence[Subscriber]) -> list[tuple[str, Subscriber | None, str | None]]:
    """(name, callable, why it cannot be loaded) for the given subscribers and ``$MLOPS_EVENT_SUBSCRIBERS``'s,
    in delivery order."""
    found: list[tuple[str, Subscriber | None, str | None]] = [
        (getattr(callback, "__qualname__", repr(callback)), callback, None) for callback in subscribers
    ]
    for path in [path.strip() for path in os.environ.get(SUBSCRIBERS_ENV, "").split(",") if path.strip()]:
        try:
            found.append((path, _resolve(path), None))
        except Exception as error:
            found.append((path, None, f"cannot be loaded: {error!r}"))
    return found


def read_events(folder: Path) -> list[Event]:
    """Every event recorded in ``folder`` (``<run dir>/events/``), oldest first."""
    if not folder.is_dir():
        return []
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


class EventLog:
    """``<run dir>/events/``: every event as a JSON file, named so that ``ls`` sorts them by time, then
    delivered to ``subscribers`` with the workspace."""

    def __init__(self, workspace: Workspace, subscribers: Sequence[Subscriber] = ()) -> None:
        self.workspace = workspace
        self.folder = workspace.events_dir
        self.subscribers = tuple(subscribers)

    def publish(self, event: Event) -> list[str]:
        """Record the event, then deliver it; returns one message per subscriber that failed."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        write_json_atomic(self.folder / f"{stamp}-{event['id']}.json", event)
        failures = []
        for name, callback, problem in _named(self.subscribers):
            if callback is not None:
                try:
                    callback(event, self.workspace)
                    continue
                except SubscriberError as error:
                    problem = f"failed: {error}"
                except Exception:
                    problem = "failed:\n" + traceback.format_exc()
            message = f"event subscriber {name} {problem}"
            print(f"warning: {message}", file=sys.stderr)
            failures.append(message)
        return failures

    def read(self) -> list[Event]:
        """Every recorded event, oldest first."""
        return read_events(self.folder)
