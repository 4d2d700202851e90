"""The Review view: one item at a time, the model's answer hidden until the reviewer has answered, labels
recorded with who and when, refusals shown with what was wrong, and the progress view."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pipelines.commands.review import queue_of
from pipelines.local.review_queue import Candidate, ReviewQueue
from pipelines.local.workspace import Workspace
from tests.pipelines.ui.conftest import SAME_ORIGIN, client_of


@pytest.fixture
def queued(tmp_path: Path) -> Workspace:
    workspace = Workspace.open(tmp_path / "run")
    with queue_of(workspace) as queue:
        queue.enqueue(
            [
                Candidate("capture:e:1:0", "capture line 1", "low_confidence", "Nice, but <b>thin</b>.", "e", 4, "positive", 0.52),
                Candidate("capture:e:2:0", "capture line 2", "quality_sample", "Terrible zipper.", "e", 4, "negative", 0.97),
            ],
            labels_per_item=2,
        )  # fmt: skip
    return workspace


@pytest.fixture
def client(queued: Workspace) -> Iterator[TestClient]:
    yield from client_of(queued)


def label(client: TestClient, item: int, answer: str, reviewer: str | None = "alice") -> object:
    form = {"label": answer, **({"reviewer": reviewer} if reviewer is not None else {})}
    return client.post(f"/review/{item}", data=form, headers=SAME_ORIGIN, follow_redirects=False)


def test_one_item_at_a_time_with_the_models_answer_hidden_until_answered(
    client: TestClient, queued: Workspace
) -> None:
    first = client.get("/review")
    assert first.status_code == 200 and 'id="who"' in first.text and 'id="item"' not in first.text

    page = client.get("/review", params={"reviewer": "alice"})
    assert page.status_code == 200 and 'data-item="1"' in page.text
    assert "Nice, but &lt;b&gt;thin&lt;/b&gt;." in page.text  # the text, escaped
    # No anchoring: neither the confidence nor the answer (each label is named as often as the others).
    assert "52" not in page.text and "the model (version" not in page.text
    assert page.text.count("positive") == page.text.count("negative") == page.text.count("neutral")
    keys = re.findall(r'data-key="([^"]+)" id="label-(\w+)"', page.text)
    assert keys == [("1", "negative"), ("2", "neutral"), ("3", "positive"), ("s", "skip")]
    assert "/static/review.js" in page.text and client.get("/static/review.js").status_code == 200
    assert client.cookies.get("reviewer") == "alice"

    answered = label(client, 1, "neutral", reviewer=None)  # the cookie names the reviewer
    assert answered.status_code == 303 and answered.headers["location"] == "/review?answered=1"
    after = client.get(answered.headers["location"])
    shown = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", after.text))
    assert "Item 1: you said neutral; the model (version 4) said positive at 52%. 1 of 2 answers." in shown
    assert 'data-item="2"' in after.text and "97%" not in after.text

    assert label(client, 2, "skip").status_code == 303
    done = client.get("/review")
    assert 'id="done"' in done.text and "the 2 open items wait for other reviewers" in done.text
    with ReviewQueue(queued.root / "review.db") as queue:
        (recorded,) = queue.item(1).labels
        assert (recorded.reviewer, recorded.label) == ("alice", "neutral") and recorded.created.endswith("Z")
        assert [x.label for x in queue.item(2).labels] == ["skip"]


def test_refused_labels_say_why_and_change_nothing(client: TestClient, queued: Workspace) -> None:
    client.get("/review", params={"reviewer": "bob"})
    unknown = label(client, 1, "great", "bob")
    assert unknown.status_code == 400 and "unknown label &#39;great&#39; for item 1" in unknown.text
    assert label(client, 1, "positive", "bob").status_code == 303
    assert label(client, 1, "positive", "carol").status_code == 303  # two answers: consolidated
    late = label(client, 1, "negative", "dan")
    assert late.status_code == 409 and "item 1 was already consolidated as positive" in late.text
    missing = label(client, 99, "negative", "dan")
    assert missing.status_code == 409 and "has no item 99" in missing.text
    assert client.post("/review/abc", data={"label": "x"}, headers=SAME_ORIGIN).status_code == 404
    assert (
        client.post(
            "/review/1", data={"label": "negative"}, headers={"Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    with ReviewQueue(queued.root / "review.db") as queue:
        assert [(x.reviewer, x.label) for x in queue.item(1).labels] == [
            ("bob", "positive"),
            ("carol", "positive"),
        ]


def test_the_progress_view_lists_agreement_disagreements_and_accuracy(client: TestClient) -> None:
    for reviewer, answer in (("alice", "positive"), ("bob", "positive")):
        assert label(client, 1, answer, reviewer).status_code == 303
    for reviewer, answer in (("alice", "negative"), ("bob", "neutral")):
        assert label(client, 2, answer, reviewer).status_code == 303
    page = client.get("/review/progress")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "2 items: 1 labeled, 1 open; 4 labels and 0 skips." in text
    assert "Agreement: 75%" in text  # (2/2 + 1/2) / 2
    assert "2 Terrible zipper. alice: negative, bob: neutral tied: needs another reviewer" in text
    assert "4 1 1 100%" in text  # version 4: one labeled item, the model right
    assert "alice: positive" in text and 'href="/review" class="current"' in client.get("/review").text
