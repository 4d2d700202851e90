"""The monitor as an operator uses it: run, approve, promote, traffic, ``monitor``, and retraining on drift.

One real local run (``run --local``), its version rolled out to staging and prod, then reviews sent to prod
through boto3's ``sagemaker-runtime`` client as an application would. First the test split's own reviews
(what the model was evaluated on: no drift), then a shifted stream (long, furious reviews): drift, and with
``--retrain-on-drift`` a new pipeline execution. Prod captures 20% of its requests (its stage file), so
enough requests are sent for the window to hold more than ``min_reviews``.
"""

from __future__ import annotations

import json
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from model_deploy.local.monitoring import MonitoringRunStore, monitoring_dir
from model_deploy.local.rollout import runtime_client
from model_deploy.local.state import ServerInfo
from model_deploy.stage_config import load_stage
from pipelines.local.executions import ExecutionStore
from pipelines.local.workspace import Workspace
from tests.model_deploy.local.test_rollout_end_to_end import REPO_ROOT, cli, ok

FURIOUS = (
    "This dress is a disaster. The fabric is cheap, thin and scratchy, the seams came apart after one wash, "
    "the zipper broke the first time I wore it, and the color faded to a dull grey. I am returning it and I "
    "will never order from this brand again. Awful, awful quality and a complete waste of money. "
)


QUICK = [
    f"--param={p}"
    for p in (
        # 2 epochs: approving it runs the smoke test, which needs a model that tells a furious review from a
        # glowing one (after 1 epoch at 64 tokens one smoke review sat on the edge)
        "Epochs=2", "MaxSeqLength=64", "MinAccuracy=0", "MinF1Macro=0", "MinBaselineMargin=-1",
        # the drift retraining is compared with the version prod serves: registered whatever it scores
        "MinChampionMargin=-1",
        # a test split of a few hundred reviews: a baseline of 40 makes any window's length shares noisy
        "TrainSplitPercentage=0.5", "ValidationSplitPercentage=0.1", "TestSplitPercentage=0.4",
    )
]  # fmt: skip
"""A quick run that registers whatever passes the smoke test: drift is about the traffic, not the model's quality."""


def send(url: str, endpoint: str, reviews: list[str], per_request: int = 8) -> None:
    client = runtime_client(url)

    def invoke(batch: list[str]) -> None:
        answer = client.invoke_endpoint(
            EndpointName=endpoint, Body=json.dumps({"features": batch}), ContentType="application/json"
        )
        assert len(json.loads(answer["Body"].read())) == len(batch)

    batches = [reviews[i : i + per_request] for i in range(0, len(reviews), per_request)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(invoke, batches))


def test_in_distribution_traffic_is_no_drift_and_a_shifted_stream_retrains(tmp_path_factory) -> None:
    run_dir, tmp = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("server-tmp")
    reviews = tmp_path_factory.mktemp("data") / "reviews.csv"  # where new reviews arrive
    shutil.copyfile(REPO_ROOT / "data" / "reviews_sample.csv", reviews)
    try:
        ok(cli(run_dir, tmp, "run", "--local", "--input", str(reviews), *QUICK))
        ok(cli(run_dir, tmp, "registry", "approve", "1"))
        ok(cli(run_dir, tmp, "endpoints", "promote"))
        workspace = Workspace.open(run_dir)
        info = ServerInfo.read(workspace.endpoints_dir)
        assert info is not None
        prod = workspace.config.endpoint_name("prod")
        min_reviews = load_stage("prod").monitoring.thresholds.min_reviews

        # nothing sent to prod yet: no traffic, which is no pass (exit status 3)
        started = datetime.now(UTC).isoformat()
        quiet = cli(run_dir, tmp, "monitor", "--since", started)
        assert quiet.returncode == 3, quiet.stdout + quiet.stderr
        assert "verdict     no_traffic: NO TRAFFIC" in quiet.stdout

        # the test split's reviews, four times over in random order, one per request: in distribution
        (execution,) = ExecutionStore(workspace.executions_dir).list()
        process = next(step for step in execution.steps if "test" in step.outputs)
        test_split = workspace.local_path(process.outputs["test"])
        texts = [
            t
            for f in sorted(test_split.rglob("*.parquet"))
            for t in pq.read_table(f)["review_body"].to_pylist()
        ]
        stream = texts * 4
        random.Random(0).shuffle(stream)
        send(info.url, prod, stream, per_request=1)  # prod captures 20% of requests: ~4/5 of the split
        calm = cli(run_dir, tmp, "monitor", "--endpoint", "prod", "--since", started, "--retrain-on-drift")
        assert calm.returncode == 0, calm.stdout + calm.stderr
        assert f"{prod} (version 1)" in calm.stdout and "verdict     no_drift" in calm.stdout
        assert "  violation   " not in calm.stdout  # none listed

        # a shifted stream: much longer, all furious
        shifted_since = datetime.now(UTC).isoformat()
        send(info.url, prod, [FURIOUS * (2 + i % 3) for i in range(1600)])
        unchanged = cli(run_dir, tmp, "monitor", "--since", shifted_since, "--retrain-on-drift")
        assert unchanged.returncode == 1, unchanged.stdout + unchanged.stderr
        assert "verdict     drift: DRIFT" in unchanged.stdout
        assert "population stability index of review lengths is" in unchanged.stdout
        # the input still holds what version 1 was built from: a run would only repeat it from the cache
        assert f"not started: the input {reviews} holds the data version 1 was built from" in unchanged.stdout
        assert len(ExecutionStore(workspace.executions_dir).list()) == 1

        # new reviews arrive where the pipeline reads: now drift retrains
        arrived = (
            pd.read_csv(reviews, dtype=str, keep_default_na=False)
            .head(200)
            .assign(**{"Review Text": FURIOUS})
        )
        arrived.to_csv(reviews, mode="a", header=False, index=False)
        drifted = cli(run_dir, tmp, "monitor", "--since", shifted_since, "--retrain-on-drift")
        assert drifted.returncode == 1, drifted.stdout + drifted.stderr
        assert "Drift: starting a pipeline run (retraining)." in drifted.stdout

        executions = ExecutionStore(workspace.executions_dir).list()
        assert len(executions) == 2 and str(executions[-1].status) == "Succeeded"
        assert executions[-1].step("ProcessReviews").cache_hit is None  # the new data was processed
        runs = MonitoringRunStore(monitoring_dir(workspace)).list(prod)
        assert [run.verdict for run in runs] == ["no_traffic", "no_drift", "drift", "drift"]
        assert runs[0].retraining is None
        assert runs[1].retraining == "not started: the verdict is no_drift, not drift"
        assert runs[2].retraining.startswith("not started: the input")
        assert runs[3].retraining == executions[-1].id and runs[3].reviews >= min_reviews
        report = json.loads(Path(runs[3].report).read_text())
        failed = {check["threshold"] for check in report["checks"] if check["passed"] is False}
        assert {"max_length_psi", "max_truncated_share_increase"} <= failed
        assert report["window_profile"]["truncated_share"] == 1.0  # every furious review is over 64 tokens
        assert Path(runs[3].picture).stat().st_size > 10_000

        # drift again within the cool-down: reported, and no second retraining
        again = cli(run_dir, tmp, "monitor", "--since", shifted_since, "--retrain-on-drift")
        assert again.returncode == 1 and "within the 1 day, 0:00:00 cool-down" in again.stdout
        assert len(ExecutionStore(workspace.executions_dir).list()) == 2
    finally:
        cli(run_dir, tmp, "endpoints", "stop")


@pytest.mark.parametrize("endpoint", ["qa-endpoint"])
def test_an_unknown_endpoint_is_named(tmp_path: Path, endpoint: str) -> None:
    refused = cli(tmp_path / "run", tmp_path, "monitor", "--endpoint", endpoint)
    assert refused.returncode == 2
    assert f"error: no local endpoint {endpoint}; the endpoints are: none yet" in refused.stderr
