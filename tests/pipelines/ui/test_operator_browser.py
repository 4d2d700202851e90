"""The operator's views in a real browser (headless Chromium, as ``test_browser.py``), on a made-up run folder:
no pipeline run needed. At 1,400 px the failed run's graph fits (its FailQualityGate node whole, no scrollbar),
the Monitoring view's picture loads, and the warning about a Rejected version shows on Endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from pipelines.local.executions import ExecutionStore
from pipelines.local.workspace import Workspace
from tests.pipelines.ui.operator_run import make_operator_run
from tests.pipelines.ui.test_browser import serving, text, wait


@pytest.fixture
def operator_page(made_up: Workspace) -> Iterator[tuple[str, Workspace]]:
    """``python -m pipelines ui --port 0`` on the made-up run folder; ready once it prints its URL."""
    workspace = make_operator_run(made_up)
    with serving(workspace.root) as url:
        yield url, workspace


def test_an_operator_sees_the_failed_graph_whole_the_monitoring_view_and_the_rejected_warning(
    operator_page, browser
) -> None:
    url, workspace = operator_page
    record = ExecutionStore(workspace.executions_dir).load("latest")
    browser.get(f"{url}/executions/{record.id}")
    node = wait(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, 'svg#graph g.node[data-step="FailQualityGate"]')
    )
    assert node.get_attribute("data-status") == "Failed"
    box = browser.execute_script(
        "const r = document.querySelector('g.node[data-step=\"FailQualityGate\"] rect').getBoundingClientRect();"
        "const g = document.querySelector('.graph-box');"
        "return [r.left, r.right, window.innerWidth, g.scrollWidth, g.clientWidth];"
    )
    left, right, window_width, scroll_width, client_width = box
    assert 0 <= left < right <= window_width, box  # the whole node is on the page
    assert scroll_width <= client_width, box  # and no scrollbar hides part of the graph

    browser.find_element(By.LINK_TEXT, "Monitoring").click()
    prod = workspace.config.endpoint_name("prod")
    wait(browser, lambda d: "drift" in text(d, f"#monitoring-{prod} h2"))
    assert "population stability index of review lengths" in text(
        browser, f"#monitoring-{prod} ul.violations"
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, f"#monitoring-{prod} table.runs tbody tr")) == 2
    wait(
        browser,
        lambda d: d.execute_script(
            "const i = document.querySelector('img.drift'); return i.complete && i.naturalWidth > 100"
        ),
        message="drift.png did not load",
    )

    browser.find_element(By.LINK_TEXT, "Endpoints").click()
    warning = wait(browser, lambda d: d.find_element(By.ID, f"rejected-{prod}"))
    assert "which is Rejected" in warning.text and warning.is_displayed()
