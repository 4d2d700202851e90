"""EventBridge-shaped events from the local Model Registry, delivered to local subscribers.

On AWS, every change of a model package's state (its creation, an approval, a rejection) becomes an
EventBridge event of detail-type ``SageMaker Model Package State Change``; the deploy pipeline is a rule on it.
Locally, the registry builds the same event, writes it to ``<run dir>/events/`` (so none is lost, even if a
subscriber fails) and calls the subscribers:

- in this process: ``unsubscribe = events.subscribe(callback)``;
- in any process: a ``"module:function"`` path in :data:`SUBSCRIBERS` (the template's own subscribers, e.g.
  the local deployment adds itself here) or in ``$MLOPS_EVENT_SUBSCRIBERS`` (comma-separated, for yours).

A subscriber gets the event dict, exactly as an EventBridge target (a Lambda function) would. Its failure is
reported, never raised: the registry change it reacts to has happened.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import os
import sys
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.local.files import write_json_atomic

DETAIL_TYPE = "SageMaker Model Package State Change"
SOURCE = "aws.sagemaker"

Event = dict[str, Any]
Subscriber = Callable[[Event], None]

SUBSCRIBERS: list[str] = ["model_deploy.local.rollout:on_model_package_event"]
"""``"module:function"`` paths called for every event, in every process that changes the registry: the local
rollout (the approval rule's target on AWS) is one."""
SUBSCRIBERS_ENV = "MLOPS_EVENT_SUBSCRIBERS"


class SubscriberError(Exception):
    """A subscriber's expected failure (a rollout that was refused): reported by its message, no traceback."""


_in_process: list[Subscriber] = []
_publishing_from: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "publishing_from", default=None
)


def publishing_run_dir() -> Path | None:
    """The run folder whose registry emitted the event being delivered (None outside a delivery)."""
    return _publishing_from.get()


def subscribe(callback: Subscriber) -> Callable[[], None]:
    """Call ``callback(event)`` for every event this process emits; returns the function that unsubscribes."""
    _in_process.append(callback)
    return lambda: _in_process.remove(callback)


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


def subscribers() -> list[tuple[str, Subscriber | None, str | None]]:
    """(name, callable, why it cannot be loaded) for every subscriber, in delivery order."""
    found: list[tuple[str, Subscriber | None, str | None]] = [
        (getattr(callback, "__qualname__", repr(callback)), callback, None) for callback in _in_process
    ]
    extra = [path.strip() for path in os.environ.get(SUBSCRIBERS_ENV, "").split(",") if path.strip()]
    for path in [*SUBSCRIBERS, *extra]:
        try:
            found.append((path, _resolve(path), None))
        except Exception as error:
            found.append((path, None, f"cannot be loaded: {error!r}"))
    return found


class EventLog:
    """``<run dir>/events/``: every event as a JSON file, named so that ``ls`` sorts them by time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def publish(self, event: Event) -> list[str]:
        """Record the event, then deliver it; returns one message per subscriber that failed."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        write_json_atomic(self.folder / f"{stamp}-{event['id']}.json", event)
        failures = []
        token = _publishing_from.set(self.folder.parent)
        try:
            for name, callback, problem in subscribers():
                if callback is not None:
                    try:
                        callback(event)
                        continue
                    except SubscriberError as error:
                        problem = f"failed: {error}"
                    except Exception:
                        problem = "failed:\n" + traceback.format_exc()
                message = f"event subscriber {name} {problem}"
                print(f"warning: {message}", file=sys.stderr)
                failures.append(message)
        finally:
            _publishing_from.reset(token)
        return failures

    def read(self) -> list[Event]:
        """Every recorded event, oldest first."""
        if not self.folder.is_dir():
            return []
        return [json.loads(path.read_text()) for path in sorted(self.folder.glob("*.json"))]
