"""Batch scoring's bookkeeping with a stand-in scorer: every row kept in order, bad rows counted by reason.

The stand-in refuses a batch that holds the word ``REFUSE`` (as the handler refuses a bad request), so the
retry row by row is exercised; the real handler is in ``tests/model_deploy/local/test_batch_predict.py``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from model_deploy.batch_scoring import ADDED_COLUMNS, Unscorable, score_file

HEADER = "id,Review Text,Rating\n"


def fake_scorer(calls: list[int]):
    def score(reviews: Sequence[str]) -> list[dict[str, Any]]:
        calls.append(len(reviews))
        for index, review in enumerate(reviews):
            if "REFUSE" in review:
                raise Unscorable(f"the body: features[{index}] is refused by the stand-in")
        return [
            {
                "predicted_label": 1 if "good" in review else -1,
                "sentiment": "positive" if "good" in review else "negative",
                "probability": 0.9,
                "probabilities": {"negative": 0.05, "neutral": 0.05, "positive": 0.9},
            }
            for review in reviews
        ]

    return score


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))


def test_every_row_is_kept_in_order_and_bad_rows_are_counted(tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_bytes(
        (
            HEADER
            + "a1,a good dress,5\n"
            + "a2,,4\n"  # empty text
            + 'a3,"a bad, ""baggy""\nfit",1\n'  # quoted commas and a newline: one review
            + "a4,REFUSE me,2\n"  # the scorer refuses it: retried alone, marked
            + "a5,too,many,fields\n"
            + "a6\n"  # too few
            + "a7,good again,5\n"
        ).encode()
        + b"a8,caf\xe9 latte,3\n"  # not UTF-8: kept byte for byte
    )
    calls: list[int] = []
    result = score_file(
        source, tmp_path / "out" / "scored.csv", fake_scorer(calls), batch_size=4, progress=False
    )
    rows = read(tmp_path / "out" / "scored.csv")
    assert [row["id"] for row in rows] == [f"a{n}" for n in range(1, 9)]
    assert [row["row_number"] for row in rows] == [str(n) for n in range(1, 9)]
    assert list(rows[0]) == ["id", "Review Text", "Rating", *ADDED_COLUMNS]
    status = {row["id"]: (row["status"], row["reason"]) for row in rows}
    assert status["a1"] == ("scored", "") and rows[0]["sentiment"] == "positive"
    assert rows[0]["probability_positive"] == "0.900000"
    assert status["a2"] == ("unscorable", "the review text is empty")
    assert rows[2]["Review Text"] == 'a bad, "baggy"\nfit' and status["a3"][0] == "scored"
    assert status["a4"] == ("unscorable", "the review text is refused by the stand-in")
    assert status["a5"] == ("unscorable", "line 7: the row has 4 fields, the header 3")  # a3 takes two lines
    assert rows[4]["Rating"] == "many,fields"  # extra fields kept in the last column
    assert status["a6"] == ("unscorable", "line 8: the row has 1 fields, the header 3")
    assert status["a7"][0] == "scored"
    assert rows[7]["Review Text"] == "caf\udce9 latte"  # the raw byte, escaped as it was read
    assert (
        (tmp_path / "out" / "scored.csv")
        .read_bytes()
        .endswith(b"a8,caf\xe9 latte,3,8,scored,,negative,-1,0.900000,0.050000,0.050000,0.900000\r\n")
    )
    assert result.rows == 8 and result.scored == 4 and result.unscorable_rows == 4
    assert result.unscorable == {
        "the review text is empty": 1,
        "the review text is refused by the stand-in": 1,
        "the row has another number of fields than the header": 2,
    }
    # batch 1 (a1-a4): one call of 3 texts refused, then 3 single calls; batch 2 (a5-a8): 2 texts
    assert calls == [3, 1, 1, 1, 2]


def test_a_blank_line_is_an_empty_line_not_a_row_of_another_width(tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text("Review Text\na good dress\n\nanother good one\n", encoding="utf-8")
    result = score_file(source, tmp_path / "scored.csv", fake_scorer([]), progress=False)
    rows = read(tmp_path / "scored.csv")
    assert [(row["row_number"], row["status"], row["reason"]) for row in rows] == [
        ("1", "scored", ""),
        ("2", "unscorable", "the line is empty"),
        ("3", "scored", ""),
    ]
    assert result.unscorable == {"the line is empty": 1}


def test_a_missing_text_column_or_id_column_is_named(tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text("id,text\n1,good\n")
    with pytest.raises(ValueError, match="has no column 'Review Text'; its columns: 'id', 'text'"):
        score_file(source, tmp_path / "o.csv", fake_scorer([]), progress=False)
    with pytest.raises(ValueError, match="has no column 'review_id'"):
        score_file(source, tmp_path / "o.csv", fake_scorer([]), text_column="text", id_column="review_id")
    assert not (tmp_path / "o.csv").exists()


def test_a_scorer_that_answers_too_few_results_is_an_error_not_a_shifted_file(tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text(HEADER + "1,good,5\n2,good,5\n")
    with pytest.raises(RuntimeError, match="answered 1 results for 2 reviews"):
        score_file(source, tmp_path / "o.csv", lambda reviews: fake_scorer([])(reviews)[:1], progress=False)
    assert not (tmp_path / "o.csv").exists()


class FakeRuntime:
    """``invoke_endpoint`` as boto3 answers it: the handler's refusal of a review is a 424 ModelError."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        import io
        import json

        from botocore.exceptions import ClientError

        self.bodies.append(request["Body"])
        reviews = json.loads(request["Body"])["features"]
        if sum(len(review) for review in reviews) > 1000:  # the runtime API's 413 for a large body
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": "the body is too large: split the request",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 413},
                },
                "InvokeEndpoint",
            )
        if any("REFUSE" in review for review in reviews):
            raise ClientError(
                {
                    "Error": {"Code": "ModelError", "Message": "Received client error (400): refused"},
                    "OriginalStatusCode": 400,
                    "ResponseMetadata": {"HTTPStatusCode": 424},
                },
                "InvokeEndpoint",
            )
        answers = fake_scorer([])(reviews)
        return {"Body": io.BytesIO(json.dumps(answers).encode())}


def test_an_endpoint_scores_the_same_way_and_its_refusals_mark_rows(tmp_path):
    from model_deploy.batch_scoring import endpoint_scorer

    source = tmp_path / "reviews.csv"
    source.write_text(HEADER + "1,good,5\n2,REFUSE,1\n3,bad,1\n")
    runtime = FakeRuntime()
    result = score_file(source, tmp_path / "o.csv", endpoint_scorer(runtime, "staging"), progress=False)
    rows = read(tmp_path / "o.csv")
    assert [row["status"] for row in rows] == ["scored", "unscorable", "scored"]
    assert rows[1]["reason"] == "Received client error (400): refused"
    assert result.scored == 2 and len(runtime.bodies) == 4  # the batch, then each of its three rows


def test_a_review_too_long_for_the_endpoint_alone_says_so(tmp_path):
    from model_deploy.batch_scoring import TOO_LONG_FOR_THE_ENDPOINT, endpoint_scorer

    source = tmp_path / "reviews.csv"
    source.write_text(HEADER + f"1,good,5\n2,{'long ' * 300},1\n3,bad,1\n")
    result = score_file(source, tmp_path / "o.csv", endpoint_scorer(FakeRuntime(), "staging"), progress=False)
    assert [(row["status"], row["reason"]) for row in read(tmp_path / "o.csv")] == [
        ("scored", ""),
        ("unscorable", TOO_LONG_FOR_THE_ENDPOINT),
        ("scored", ""),
    ]
    assert result.unscorable == {TOO_LONG_FOR_THE_ENDPOINT: 1}
