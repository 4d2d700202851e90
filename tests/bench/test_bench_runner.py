"""The benchmark runner: discovery of benchmark modules and the per-benchmark sections of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.__main__ import PREAMBLE, discover, main, markers, run_all, update_section


def test_sections_are_replaced_in_place_and_others_kept() -> None:
    document = update_section(PREAMBLE, "alpha", "## Alpha\n\nfirst")
    document = update_section(document, "beta", "## Beta\n\nsecond")
    updated = update_section(document, "alpha", "## Alpha\n\nthird")
    assert updated.startswith(PREAMBLE.rstrip("\n"))
    assert "first" not in updated and "third" in updated and "second" in updated
    assert updated.index("third") < updated.index("second")  # alpha keeps its place
    assert updated.count(markers("alpha")[0]) == updated.count(markers("alpha")[1]) == 1


def test_a_broken_section_is_refused() -> None:
    with pytest.raises(ValueError, match="without <!-- bench:alpha:end -->"):
        update_section(f"{markers('alpha')[0]}\nhalf a section", "alpha", "new")


def test_discovery_finds_benchmark_modules_only() -> None:
    found = discover()
    assert "tokenization" in found
    assert "synthetic_reviews" not in found and "review_phrases" not in found  # helpers, not benchmarks


def test_run_all_writes_each_section(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    fake = SimpleNamespace(TITLE="Fake", run=lambda quick: f"| quick | {quick} |")
    run_all({"fake": fake}, quick=True, output=output, echo=lambda line: None)
    text = output.read_text()
    assert text.startswith("# Benchmarks")
    assert "## Fake" in text and "| quick | True |" in text and "(quick)" in text


def test_unknown_names_are_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no_such_benchmark", "--quick"])
    assert exit_info.value.code == 2
    assert "no benchmark named no_such_benchmark" in capsys.readouterr().err
