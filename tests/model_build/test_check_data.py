"""The data-check step on constructed data: CI and DPL against a hand computation, the shares, the gate.

The script runs in-process (``main(argv)``, as the step scripts import their siblings), so a test costs well
under a second; the pipeline-level behaviour (the run stops before processing) is in
``tests/pipelines/test_data_check_gate.py``.
"""

from __future__ import annotations

import csv
import json
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import check_data
import data_profile
import pytest

from model_build.pipeline_spec import PIPELINE, RegisterStep

HEADER = ["Clothing ID", "Age", "Title", "Review Text", "Rating", "Recommended IND",
          "Positive Feedback Count", "Division Name", "Department Name", "Class Name"]  # fmt: skip

# (Class Name, rating). By hand, positive = rating 4 or 5, facet d = the value, facet a = the other rows:
#   Dresses: n_d 6, 3 positive; n_a 4, 2 positive -> CI (4-6)/10 = -0.2, DPL 2/4 - 3/6 = 0
#   Pants:   n_d 3, 1 positive; n_a 7, 4 positive -> CI (7-3)/10 = 0.4,  DPL 4/7 - 1/3 = 5/21
#   Tops:    n_d 1, 1 positive; n_a 9, 4 positive -> CI (9-1)/10 = 0.8,  DPL 4/9 - 1   = -5/9
# The Dresses row without a rating has no label: counted, left out of the metrics.
LABELLED = [("Dresses", r) for r in (5, 5, 4, 1, 2, 3)] + [("Pants", r) for r in (5, 1, 1)] + [("Tops", 4)]
EXPECTED = {
    "Dresses": (Fraction(-2, 10), Fraction(0)),
    "Pants": (Fraction(4, 10), Fraction(5, 21)),
    "Tops": (Fraction(8, 10), Fraction(-5, 9)),
}


def row(index: int, class_name: str, rating: str, **overrides: str) -> dict[str, str]:
    values = {
        "Clothing ID": str(100 + index),
        "Age": str(20 + index),
        "Title": f"title {index}",
        "Review Text": f"review number {index} about the {class_name.lower()}",
        "Rating": rating,
        "Recommended IND": "1",
        "Positive Feedback Count": "0",
        "Division Name": "General",
        "Department Name": "Tops" if class_name == "Tops" else "Other",
        "Class Name": class_name,
    }
    return values | overrides


def constructed_rows() -> list[dict[str, str]]:
    rows = [row(index, name, str(rating)) for index, (name, rating) in enumerate(LABELLED)]
    return [*rows, row(len(rows), "Dresses", "")]


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(tmp_path: Path, csv_path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    output, message = tmp_path / "report", tmp_path / "message"
    argv = ["--input-data", str(csv_path), "--output-data", str(output), "--exit-message", str(message)]
    status = check_data.main([*argv, *extra])
    report = json.loads((output / check_data.REPORT_FILE).read_text()) if status != 2 else {}
    return status, report, message.read_text() if message.exists() else ""


def test_ci_and_dpl_are_clarifys_on_a_hand_computed_example(tmp_path):
    status, report, message = run(tmp_path, write_csv(tmp_path / "reviews.csv", constructed_rows()))
    assert status == 0 and message == ""
    values = report["bias"]["facets"]["Class Name"]["values"]
    assert set(values) == set(EXPECTED)
    for name, (ci, dpl) in EXPECTED.items():
        assert values[name]["CI"] == pytest.approx(float(ci)), name
        assert values[name]["DPL"] == pytest.approx(float(dpl)), name
    assert values["Dresses"]["count"] == 6 and values["Dresses"]["positive_count"] == 3
    assert values["Pants"]["sentiments"] == {"positive": 1, "negative": 2}
    assert report["bias"]["facets"]["Class Name"]["max_abs_CI"] == pytest.approx(0.8)
    assert report["summary"]["max_abs_DPL"] == pytest.approx(5 / 9)
    assert report["labels"]["rows_without_label"] == 1 and report["labels"]["rows_with_label"] == 10
    assert report["labels"]["by_sentiment"]["positive"] == {"count": 5, "share": 0.5}
    assert report["missing_values"]["Rating"] == {"count": 1, "share": 1 / 11}
    assert (tmp_path / "report" / check_data.FIGURE_FILE).stat().st_size > 10_000


def test_the_metric_functions_follow_the_definitions():
    assert data_profile.class_imbalance(n_a=4, n_d=6) == pytest.approx(-0.2)
    assert data_profile.class_imbalance(0, 0) is None
    assert data_profile.difference_in_proportions_of_labels(7, 4, 3, 1) == pytest.approx(5 / 21)
    assert data_profile.difference_in_proportions_of_labels(10, 5, 0, 0) is None  # facet d has no rows


def test_other_positive_ratings_change_dpl_not_ci(tmp_path):
    _, report, _ = run(tmp_path, write_csv(tmp_path / "r.csv", constructed_rows()), "--positive-ratings", "5")
    pants = report["bias"]["facets"]["Class Name"]["values"]["Pants"]
    # rating 5 only: Pants 1 of 3, the other 7 rows 2 of 7 (the two 5s of Dresses)
    assert pants["DPL"] == pytest.approx(2 / 7 - 1 / 3) and pants["CI"] == pytest.approx(0.4)


def test_a_missing_required_column_breaks_the_schema_and_names_it(tmp_path):
    header = [name for name in HEADER if name != "Rating"]
    status, report, message = run(tmp_path, write_csv(tmp_path / "no-rating.csv", constructed_rows(), header))
    assert status == 1
    assert report["schema"]["missing_columns"] == ["Rating"]
    assert "- the required column Rating is missing from no-rating.csv\n" in message
    assert report["gate"]["passed"] is False
    failed = [check for check in report["gate"]["checks"] if not check["passed"]]
    assert [(c["check"], c["value"], c["threshold"]) for c in failed] == [
        ("schema: required column present", False, True),
        ("rows with a valid rating", 0, 1),
    ]
    assert message.endswith("- no row has a valid Rating (1-5): there is no Rating column")


def test_a_column_the_pipeline_reads_full_of_missing_values_fails_with_its_share_and_threshold(tmp_path):
    rows = [entry | {"Division Name": ""} for entry in constructed_rows()]
    status, report, message = run(tmp_path, write_csv(tmp_path / "no-division.csv", rows))
    assert status == 1
    assert report["missing_values"]["Division Name"]["share"] == 1.0
    assert (
        "- Division Name is empty in 100% of rows (11 of 11), above the 50% allowed "
        "(MaxMissingShare, --max-missing-share)" in message
    )
    assert "Rating" not in message  # 1 of 11 missing: below the threshold


def test_a_column_no_step_reads_is_reported_not_judged(tmp_path, capsys):
    """Real review exports often lack a Title: the run goes on, the report says how empty it is."""
    rows = [entry | {"Title": "", "Age": ""} for entry in constructed_rows()]
    status, report, _ = run(tmp_path, write_csv(tmp_path / "no-title.csv", rows))
    assert status == 0
    assert report["missing_values"]["Title"]["share"] == 1.0
    assert {"Title", "Age"} <= set(report["missing_values_not_judged"])
    assert "Title" not in report["missing_values_judged"]
    assert not any(check["where"] == "Title" for check in report["gate"]["checks"])
    assert report["summary"]["max_missing_column"] != "Title"
    assert "not read (reported, not judged): Age 100.0%, Title 100.0%" in capsys.readouterr().out.replace(
        "columns the pipeline does not read", "not read"
    )


def test_rows_with_the_wrong_number_of_fields_are_counted_with_their_line_and_left_out(tmp_path):
    path = write_csv(tmp_path / "ragged.csv", constructed_rows())
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    bad_long = ",".join(["x"] * (len(HEADER) + 2)) + "\n"
    bad_short = "1,2,3,4,5,6\n"
    path.write_text("".join([*lines[:3], bad_long, *lines[3:], bad_short]), encoding="utf-8")
    status, report, _ = run(tmp_path, path)
    assert status == 0  # the other rows are checked as usual; processing rejects these two
    assert report["rows"] == len(lines) - 1
    assert report["malformed_rows"]["count"] == 2
    assert report["malformed_rows"]["first"] == [
        f"ragged.csv: line 4: the row has {len(HEADER) + 2} fields, the header {len(HEADER)}",
        f"ragged.csv: line {len(lines) + 2}: the row has 6 fields, the header {len(HEADER)}",
    ]
    assert report["schema"]["unparseable"]["Rating"]["count"] == 0  # "x" never reached the Rating column


def test_unparseable_values_empty_texts_and_duplicates_are_counted(tmp_path):
    rows = constructed_rows()
    rows[0] = rows[0] | {"Rating": "five"}
    rows[1] = rows[1] | {"Review Text": "   "}
    rows.append(dict(rows[2]))  # an exact copy of an earlier row
    status, report, message = run(tmp_path, write_csv(tmp_path / "messy.csv", rows))
    assert report["schema"]["unparseable"]["Rating"] == {"count": 1, "share": 1 / 11}
    assert report["empty_text"]["count"] == 1
    assert report["duplicates"] == {"count": 1, "share": 1 / 12}
    assert status == 1  # 1 in 11 ratings unparseable is above the 5% default
    assert (
        "- 9.09% of Rating values (1 of 11 non-empty) do not parse as ratings 1-5, above the 5% allowed "
        "(MaxUnparseableShare, --max-unparseable-share)" in message
    )
    assert "repeat an earlier row" not in message  # 1 in 12, below the 10% default
    duplicates = next(check for check in report["gate"]["checks"] if check["check"] == "duplicate share")
    assert duplicates["message"] == (
        "8.33% of rows (1 of 12) repeat an earlier row field for field, within the 10% allowed "
        "(MaxDuplicateShare, --max-duplicate-share)"
    )


def test_bias_gates_only_when_asked(tmp_path):
    csv_path = write_csv(tmp_path / "reviews.csv", constructed_rows())
    assert run(tmp_path, csv_path, "--max-abs-dpl", "0.3")[0] == 0  # reported, not gated
    status, _, message = run(tmp_path, csv_path, "--gate-on-bias", "true", "--max-abs-dpl", "0.3")
    assert status == 1
    assert (
        "- Class Name = Tops (1 labelled row): the difference in positive-label shares against the other "
        "rows, |DPL|, is 0.556, above the 0.3 allowed (MaxAbsDpl, --max-abs-dpl)" in message
    )
    assert "Class Name = Dresses" not in message


def test_unreadable_input_exits_2_with_a_message(tmp_path):
    status, _, message = run(tmp_path, tmp_path / "nothing-here")
    assert status == 2 and "does not exist" in message


def test_a_file_with_only_a_header_fails_saying_it_has_no_rows(tmp_path):
    status, report, message = run(tmp_path, write_csv(tmp_path / "header-only.csv", []))
    assert status == 1 and report["rows"] == 0
    assert message == (
        "The data check failed 1 of its 13 checks; the pipeline stops before processing:\n"
        "- no row has a valid Rating (1-5): the input has no data rows, only a header"
    )


def test_every_check_says_what_it_measured_in_a_sentence(tmp_path):
    status, report, _ = run(tmp_path, write_csv(tmp_path / "reviews.csv", constructed_rows()))
    assert status == 0
    messages = {(check["check"], check["where"]): check["message"] for check in report["gate"]["checks"]}
    assert messages["rows with a valid rating", "Rating"] == "10 of 11 rows have a valid Rating (1-5)"
    assert messages["missing-value share", "Class Name"] == (
        "Class Name is empty in 0% of rows (0 of 11), within the 50% allowed "
        "(MaxMissingShare, --max-missing-share)"
    )
    assert messages["schema: values parse as the column's type", "Recommended IND"] == (
        "0% of Recommended IND values (0 of 11 non-empty) do not parse as 0 or 1, within the 5% allowed "
        "(MaxUnparseableShare, --max-unparseable-share)"
    )


def test_a_value_just_above_its_threshold_is_not_written_as_equal_to_it():
    assert check_data._pair(0.050004, 0.05, percent=True) == ("5.0004%", "5%")
    assert check_data._pair(0.05, 0.05, percent=True) == ("5%", "5%")
    assert check_data._pair(1 / 3, 0.05, percent=True) == ("33.3%", "5%")


def _header_not_utf8(folder: Path) -> Path:
    path = write_csv(folder / "h.csv", constructed_rows())
    path.write_bytes(path.read_bytes().replace(b"Clothing ID", b"Clothing \xfcID", 1))
    return path


def _png_in_a_folder(folder: Path) -> Path:
    write_csv(folder / "good.csv", constructed_rows())
    (folder / "picture.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    return folder


def _random_bytes(folder: Path) -> Path:
    path = folder / "noise.csv"
    path.write_bytes(random.Random(1).randbytes(4096))  # seeded: starts with 0xf5, never a UTF-8 byte
    return path


def _nul_bytes(folder: Path) -> Path:
    path = folder / "zeros.csv"
    path.write_bytes(bytes(4096))
    return path


def _empty(folder: Path) -> Path:
    path = folder / "empty.csv"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("make_input", "expected"),
    [
        (_header_not_utf8, "h.csv: the header is not valid UTF-8 (byte 0xfc at offset 9, after 'Clothing ')"),
        (_png_in_a_folder, "picture.csv: the header is not valid UTF-8 (byte 0x89 at offset 0)"),
        (_random_bytes, "noise.csv: the header is not valid UTF-8 (byte 0xf5 at offset 0)"),
        (_nul_bytes, "zeros.csv: the header holds a NUL byte (offset 0): a binary file, not CSV text"),
        (_empty, "empty.csv: the file is empty"),
    ],
)
def test_a_header_that_is_not_utf8_text_exits_2_naming_the_file_and_byte(
    tmp_path, capsys, make_input, expected
):
    folder = tmp_path / "in"
    folder.mkdir()
    status, _, message = run(tmp_path, make_input(folder))
    assert status == 2
    assert message.startswith("The data check cannot read the input: ") and expected in message
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "report").exists()  # no report, no picture: nothing looks like a finished check


def test_each_threshold_names_the_pipeline_parameter_the_description_passes_it_from():
    from model_build import pipeline_spec as ps

    step = ps.PIPELINE.step(ps.CHECK_DATA)
    assert isinstance(step, ps.ProcessingStep) and step.script == "check_data.py"
    arguments = step.arguments
    for flag, parameter in check_data.PIPELINE_PARAMETERS.items():
        assert arguments[flag] == ps.Param(parameter), flag
    thresholds = {flag for flag in arguments if flag.startswith("--max-")}
    assert thresholds == set(check_data.PIPELINE_PARAMETERS)


def test_human_labels_beside_the_data_are_counted_for_the_lineage(tmp_path):
    """An export of the review queue (``Label Source`` set) beside the data: counted, not an unknown column,
    and carried into the version's metadata (``DataCheckHumanLabels``)."""
    folder = tmp_path / "input"
    folder.mkdir()
    write_csv(folder / "reviews.csv", constructed_rows())
    labeled = [row(50 + i, "Dresses", "1", **{"Label Source": f"human-review:item-{i}:1 of 1 reviewers agreed"}) for i in range(3)]  # fmt: skip
    write_csv(folder / "human-labels.csv", labeled, [*HEADER, "Label Source"])
    status, report, _ = run(tmp_path, folder)
    assert status == 0
    assert report["labels"]["human_labels"] == report["summary"]["human_labels"] == 3
    assert "Label Source" not in report["schema"]["unknown_columns"]
    assert report["missing_values"]["Label Source"]["count"] == 0
    (register,) = [step for step in PIPELINE.steps if isinstance(step, RegisterStep)]
    assert ("DataCheckHumanLabels", "summary.human_labels") in register.data_report_metadata
