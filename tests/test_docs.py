"""The README and ``docs/`` stay true to the repository: every relative link and anchor leads somewhere, the
README's layout table lists exactly the top-level folders, and its picture is the pipeline as described."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from model_build.pipeline_spec import PIPELINE
from pipelines.ui.graph import DOCS_PICTURE, description_svg

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _tracked_folders() -> set[str]:
    """The repository's top-level folders, as git has them (not ``.venv``, ``.mlops`` or build output)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return {path.split("/")[0] for path in tracked if "/" in path}


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but ``-`` and ``_`` dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [target for target in LINK.findall(text) if not target.startswith(("http://", "https://"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_and_anchors_lead_somewhere(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file.relative_to(ROOT)})")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no heading with anchor #{anchor} in {file.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_the_files_and_folders_a_page_names_exist(page: Path) -> None:
    """A path in backticks under one of the repository's folders (``model_build/pipeline_spec.py``,
    ``model_deploy/stages/*.json``) names something that is there: a page follows a file when it moves."""
    folders = "|".join(re.escape(folder) for folder in _tracked_folders())
    named = re.findall(rf"`((?:{folders})/[\w/.*-]*)`", page.read_text(encoding="utf-8"))
    missing = [path for path in named if not any(ROOT.glob(path.rstrip("/")))]
    assert not missing, f"{page.relative_to(ROOT)} names paths that are not in the repository: {missing}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in _links(ROOT / "README.md")}
    unlinked = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, (
        f"docs pages the README does not link to: {unlinked}; add them to its table of readers"
    )


def test_readme_layout_table_lists_the_top_level_folders() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1]
    listed = {row.split("`")[1].split("/")[0] for row in table.splitlines() if row.startswith("| `")}
    folders = {folder for folder in _tracked_folders() if not folder.startswith(".")}
    assert listed - {".github"} == folders, (
        f"README's layout table lists {sorted(listed)}, the repository's top-level folders are {sorted(folders)}: "
        "add a row for each missing folder, remove rows for folders that are gone"
    )
    assert (ROOT / ".github" / "workflows").is_dir()


def test_readme_picture_is_the_pipeline_description() -> None:
    assert DOCS_PICTURE.read_text(encoding="utf-8") == description_svg(PIPELINE), (
        f"{DOCS_PICTURE.relative_to(ROOT)} is not the drawing of model_build/pipeline_spec.py's PIPELINE: "
        "run `.venv/bin/python -m pipelines.ui.graph` to redraw it"
    )
    svg = ET.fromstring(DOCS_PICTURE.read_text(encoding="utf-8"))
    names = {el.text for el in svg.iter("{http://www.w3.org/2000/svg}text") if el.get("class") == "name"}
    assert names == {step.name for step in PIPELINE.steps}
