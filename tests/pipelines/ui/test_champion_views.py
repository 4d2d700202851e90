"""The registry shows how each version compared with the champion when it was evaluated: ``registry list``
and ``registry describe`` (the CLI) and the page's registry and version views.

The versions are made up (their ``evaluation.json`` as ``evaluate.py`` writes the champion's part): what is
tested is that the comparison is shown, with the champion it names and whether the check held.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipelines import cli
from pipelines.local.workspace import Workspace
from tests.pipelines.ui.conftest import METRICS, client_of, made_up_versions
from tests.pipelines.ui.test_app import text_of


def with_champion(check: dict[str, Any], champion_f1: float | None, arn: str | None) -> dict[str, Any]:
    return {
        **METRICS,
        "champion": {"model_package_arn": arn, "f1_macro": {"value": champion_f1}},
        "champion_check": check,
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """Version 1 evaluated with no champion, version 2 better than version 1, version 3 worse (it holds only
    because the gate was opened), version 4 evaluated before the champion check existed."""
    first = "arn:aws:sagemaker:us-east-1:000000000000:model-package/review-sentiment-dev-models/1"
    reports = [
        with_champion(
            {"holds": True, "outcome": "no champion", "min_margin": 0.0,
             "message": "no champion: no version serves production and none is approved yet; the check holds"},
            None, None,
        ),
        with_champion(
            {"holds": True, "outcome": "holds", "min_margin": 0.0, "margin": 0.05, "message": "better"},
            0.70, first,
        ),
        with_champion(
            {"holds": False, "outcome": "fails", "min_margin": 0.0, "margin": -0.0321, "message": "worse"},
            0.7821, first,
        ),
        METRICS,
    ]  # fmt: skip
    return made_up_versions(tmp_path / "run", reports)


def test_registry_list_and_describe_show_the_champion_comparison(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["registry", "list", "--run-dir", str(workspace.root)]) == 0
    # each version: its row, then its metrics and data check on lines of their own under it
    rows: dict[str, str] = {}
    current = ""
    for line in capsys.readouterr().out.splitlines():
        if line[:1].isdigit():
            current = line.split()[0]
        if current:
            rows[current] = " ".join(f"{rows.get(current, '')} {line}".split())  # wrapped cells joined
    assert "vs champion: none" in rows["1"]
    assert "vs champion v1 f1_macro 0.7000 (+0.0500)" in rows["2"]
    assert "vs champion v1 f1_macro 0.7821 (-0.0321)" in rows["3"]
    assert "champion" not in rows["4"]

    assert cli.main(["registry", "describe", "3", "--run-dir", str(workspace.root)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["ChampionCheck"]["outcome"] == "fails"
    assert described["ChampionCheck"]["model_package_arn"].endswith("/1")
    assert described["ChampionCheck"]["f1_macro"] == 0.7821
    assert cli.main(["registry", "describe", "4", "--run-dir", str(workspace.root)]) == 0
    assert "ChampionCheck" not in json.loads(capsys.readouterr().out)


def test_the_page_shows_the_champion_comparison(workspace: Workspace) -> None:
    for client in client_of(workspace):
        listing = client.get("/registry").text
        cells = {
            int(re.search(r'href="/registry/(\d+)"', row).group(1)): text_of(
                row.split('<td class="champion">')[1].split("</td>")[0]
            )
            for row in listing.split("<tr>")
            if '<td class="champion">' in row
        }
        assert cells == {1: "none", 2: "version 1 +0.0500", 3: "version 1 -0.0321 fails", 4: "-"}
        worse = text_of(client.get("/registry/3").text)
        assert (
            "Compared on the same test split with version 1 -0.0321 fails : F1 macro 0.7500 against 0.7821"
            in worse
        )
        assert "MinChampionMargin +0.0000: fails" in worse
        first = text_of(client.get("/registry/1").text)
        assert "No champion when it was evaluated (no champion: no version serves production" in first
        assert "Champion" not in text_of(client.get("/registry/4").text).split("Approval")[0]
