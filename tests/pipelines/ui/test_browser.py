"""The page in a real browser: headless Chromium (Debian's package) driven by Selenium through chromedriver.

As an approver takes it: after a local run, open the page, see the execution and its graph, open the
registered version, see its pictures load, approve it and see the status change; then watch a run in progress
end on the page without a reload. ``make browser`` installs Chromium and chromedriver (``make test`` runs it).
The rollout an approval starts is off here (``MLOPS_LOCAL_ROLLOUT=off``, as in the whole suite): the route
tests check that the approval's event reaches it, the rollout's own tests what it does.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pipelines.local.executions import ExecutionStore, Status
from pipelines.local.review_queue import DATABASE, Candidate, ReviewQueue
from pipelines.local.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_SECONDS = 180


@contextlib.contextmanager
def serving(run_dir: Path) -> Iterator[str]:
    """``python -m pipelines ui --port 0`` as a user starts it; ready once it prints its URL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "ui", "--port", "0", "--run-dir", str(run_dir)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_SECONDS)
        assert ready, f"`pipelines ui` printed nothing within {START_TIMEOUT_SECONDS} s"
        first = process.stdout.readline()  # its first line: the URL, once it has bound and started
        assert " is at http://127.0.0.1:" in first, first + (process.stdout.read() if process.poll() else "")
        yield first.split(" is at ")[1].split()[0]
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def page_server(pipeline_run: Workspace) -> Iterator[str]:
    with serving(pipeline_run.root) as url:
        yield url


def wait(driver: WebDriver, condition: Any, seconds: float = 60, message: str = "") -> Any:
    """Poll ``condition``; a live page swaps its <main> every 2 s, so an element found a moment ago may be gone."""
    return WebDriverWait(
        driver, seconds, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message)


def text(driver: WebDriver, css: str) -> str:
    """The rendered text of the first match, read in one script so a swap of <main> cannot come in between."""
    return str(driver.execute_script("return document.querySelector(arguments[0]).innerText", css))


def row_text(driver: WebDriver, link: str) -> str:
    """The rendered text of the table row holding the link ``link``, read in one script (see ``text``)."""
    return str(
        driver.execute_script(
            "const a = [...document.querySelectorAll('a')].find(a => a.textContent.trim() === arguments[0]);"
            "return a ? a.closest('tr').innerText : '';",
            link,
        )
    )


def test_an_approver_takes_the_page_from_run_to_deployed_model(page_server, browser, pipeline_run):
    record = ExecutionStore(pipeline_run.executions_dir).load("latest")
    browser.get(page_server)
    assert browser.current_url == f"{page_server}/executions"
    row = browser.find_element(By.LINK_TEXT, record.id)
    assert "Succeeded" in row.find_element(By.XPATH, "./ancestor::tr").text
    row.click()

    # the graph: every step of the shared description, with the branch the condition did not take
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "svg#graph g.node"))
    nodes = {
        node.get_attribute("data-step"): node.get_attribute("data-status")
        for node in browser.find_elements(By.CSS_SELECTOR, "svg#graph g.node")
    }
    assert nodes == {
        "CheckData": "Succeeded",
        "ProcessReviews": "Succeeded",
        "TrainModel": "Succeeded",
        "EvaluateModel": "Succeeded",
        "CheckModelQuality": "Succeeded",
        "RegisterModel": "Succeeded",
        "FailQualityGate": "Skipped",
    }
    assert browser.find_element(By.CSS_SELECTOR, "svg#graph").size["width"] > 600

    # the registered version, its pictures decoded by the browser
    browser.find_element(By.ID, "registered-version").click()
    wait(browser, lambda d: "PendingManualApproval" in text(d, "#approval-status"))
    images = browser.find_elements(By.CSS_SELECTOR, ".pictures img")
    assert {image.get_attribute("alt") for image in images} == {
        "data_check.png",
        "confusion_matrix.png",
        "training_curves.png",
    }
    wait(
        browser,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('.pictures img')].every(i => i.complete && i.naturalWidth > 100)"
        ),
        message="the pictures did not load",
    )

    # approve, with a note: the status changes, the note is in the version's history
    browser.find_element(By.ID, "note").send_keys("checked the confusion matrix")
    browser.find_element(By.ID, "approve").click()
    wait(browser, lambda d: "Approved" in text(d, "#approval-status"), message="the status did not change")
    assert browser.current_url == f"{page_server}/registry/1"
    assert "checked the confusion matrix" in text(browser, "table.history")
    wait(
        browser, lambda d: "Approve version 1: Done" in text(d, "#job"), message="the approval did not finish"
    )
    assert not browser.find_element(By.ID, "approve").is_enabled()  # approved stays approved
    browser.find_element(By.LINK_TEXT, "Model registry").click()
    row = row_text(browser, "version 1")
    assert "Approved" in row and "checked the confusion matrix" in row


def test_a_run_in_progress_updates_on_the_page_without_a_reload(page_server, browser, pipeline_run):
    store = ExecutionStore(pipeline_run.executions_dir)
    record = store.create(pipeline_run.config.pipeline_name, {"Epochs": 1})  # Executing, by this live process
    try:
        browser.get(f"{page_server}/executions")
        assert "Executing" in row_text(browser, record.id)
        browser.execute_script("window.notReloaded = true")
        record.status, record.ended = Status.SUCCEEDED, record.created
        store.save(record)
        wait(browser, lambda d: "Succeeded" in row_text(d, record.id), message="the page did not update")
        assert browser.execute_script("return window.notReloaded === true"), "the page reloaded instead"
        assert not browser.find_elements(By.CSS_SELECTOR, "main[data-live]")  # and stopped polling
    finally:
        shutil.rmtree(store.folder(record.id))


def test_a_reviewer_labels_with_the_keyboard_and_sees_the_models_answer_only_after(browser, tmp_path):
    workspace = Workspace.open(tmp_path / "run")
    with ReviewQueue(workspace.root / DATABASE) as queue:
        queue.enqueue(
            [
                Candidate("capture:e:1:0", "line 1", "low_confidence", "Thin fabric, nice cut.", "e", 4, "positive", 0.52),
                Candidate("capture:e:2:0", "line 2", "low_confidence", "It is a dress.", "e", 4, "neutral", 0.4),
            ],
            labels_per_item=1,
        )  # fmt: skip
    with serving(workspace.root) as url:
        browser.get(f"{url}/review")
        browser.find_element(By.ID, "reviewer-name").send_keys("alice\n")
        wait(browser, lambda d: d.find_elements(By.ID, "review-text"))
        assert text(browser, "#review-text") == "Thin fabric, nice cut."
        assert "52%" not in text(browser, "main") and "the model (version" not in text(browser, "main")

        browser.find_element(By.TAG_NAME, "body").send_keys("2")  # neutral, by its key
        wait(browser, lambda d: d.find_elements(By.ID, "answered"))
        assert "you said neutral; the model (version 4) said positive at 52%" in text(browser, "#answered")
        assert text(browser, "#review-text") == "It is a dress."

        browser.find_element(By.TAG_NAME, "body").send_keys("s")  # skip
        wait(browser, lambda d: d.find_elements(By.ID, "done"))
    with ReviewQueue(workspace.root / DATABASE) as queue:
        first, second = queue.items()
        assert first.consolidated == "neutral" and [(x.reviewer, x.label) for x in first.labels] == [
            ("alice", "neutral")
        ]
        assert second.consolidated is None and [x.label for x in second.labels] == ["skip"]
