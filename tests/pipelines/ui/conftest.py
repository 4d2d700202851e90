"""Fixtures of the web page's tests: one real local run for the whole session, and made-up run folders."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.testclient import TestClient

from pipelines.local.registry import Lineage, ModelRegistry
from pipelines.local.workspace import Workspace
from pipelines.ui.app import create_app
from tests.pipelines.test_local_pipeline import OPEN_GATE, SMALL, cli

BASE_URL = "http://127.0.0.1"
SAME_ORIGIN = {"Origin": BASE_URL}
METRICS = {
    "metrics": {"accuracy": {"value": 0.8}, "f1_macro": {"value": 0.75}, "examples": 39},
    "baselines": {"majority_class": {"accuracy": {"value": 0.33}, "f1_macro": {"value": 0.17}}},
    "best_baseline": {"name": "majority_class", "f1_macro": {"value": 0.17}},
    "f1_macro_margin_over_best_baseline": {"value": 0.58},
}


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """``run --local`` on the sample data with the small settings and the gate opened (a minute or two on a
    loaded machine; ``make run``'s settings take several times longer): one execution, and version 1."""
    run_dir = tmp_path_factory.mktemp("ui-run")
    done = cli(run_dir, "run", "--local", *SMALL, *OPEN_GATE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Workspace.open(run_dir)


@pytest.fixture
def made_up(tmp_path: Path) -> Workspace:
    """A run folder with two registered versions and no executions (their lineage names a missing one)."""
    return made_up_versions(tmp_path / "run", [METRICS, METRICS])


def made_up_versions(run_dir: Path, reports: list[dict[str, Any]]) -> Workspace:
    """A run folder with one registered version per evaluation report; their lineage names a missing execution."""
    workspace = Workspace.open(run_dir)
    lineage = Lineage(
        "20260101T000000-abcdef", "arn:e", {}, "data/reviews_sample.csv", "0" * 64, "1" * 64, None
    )
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        for report in reports:
            registry.register(
                workspace.config.model_package_group_name,
                f"s3://{workspace.artifacts_bucket}/models/model.tar.gz",
                lineage,
                content_types=["application/json"],
                response_types=["application/json"],
                inference_instance_types=["ml.m5.large"],
                metrics=report,
            )
    return workspace


def client_of(workspace: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(workspace, poll_seconds=0.2), base_url=BASE_URL) as client:
        yield client
        assert client.app.state.jobs.wait(timeout=60), "a job the page started did not finish"


@pytest.fixture
def run_client(pipeline_run: Workspace) -> Iterator[TestClient]:
    yield from client_of(pipeline_run)


@pytest.fixture
def made_up_client(made_up: Workspace) -> Iterator[TestClient]:
    yield from client_of(made_up)


def executable(*names: str) -> str:
    for name in names:
        if found := shutil.which(name):
            return found
    pytest.fail(f"{' or '.join(names)} is not installed: `make browser` installs Chromium and its driver")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = executable("chromium", "chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=executable("chromedriver")))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
