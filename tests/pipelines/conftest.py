"""Fixtures of the human review tests: a served endpoint with captured traffic, some of it unsure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from model_deploy.local.capture import CaptureWriter
from model_deploy.local.state import Deployment, EndpointRecord, EndpointStore
from pipelines.local.workspace import Workspace


def answer(sentiment: str, probability: float) -> dict:
    rest = (1 - probability) / 2
    probabilities = {name: rest for name in ("negative", "neutral", "positive")} | {sentiment: probability}
    return {"sentiment": sentiment, "probability": probability, "probabilities": probabilities}


@pytest.fixture
def served(tmp_path: Path) -> tuple[Workspace, str, Path]:
    """A prod endpoint that served version 2 since an hour ago, with captured traffic and one broken line."""
    workspace = Workspace.open(tmp_path / "run")
    name = workspace.config.endpoint_name("prod")
    deployed = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    EndpointStore(workspace.endpoints_dir).save(
        {
            name: EndpointRecord(
                name, "prod", version=2, history=[Deployment(deployed, 2, "arn:local:2", "Deployed")]
            )
        }
    )
    writer = CaptureWriter(workspace.data_capture_root("prod"), name, "AllTraffic", 100)
    requests = [
        (["Runs small, the fabric is fine.", "Love it, wearing it every day!"], [answer("neutral", 0.41), answer("positive", 0.97)]),
        (["Returned it, the seams came apart."], [answer("negative", 0.55)]),
        (["It is a dress."], [answer("positive", 0.38)]),
    ]  # fmt: skip
    for reviews, answers in requests:
        writer.write(
            json.dumps({"features": reviews}).encode(), "application/json", json.dumps(answers).encode(), "application/json"
        )  # fmt: skip
    writer.close()
    (capture_file,) = (workspace.data_capture_root("prod") / name).rglob("*.jsonl")
    with capture_file.open("a", encoding="utf-8") as handle:
        handle.write('{"captureData": {"endpointInput": \n')  # a line cut short
    return workspace, name, capture_file
