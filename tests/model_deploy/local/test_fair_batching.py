"""The model worker's fairness: a request of many reviews is answered in chunks that take turns with the
requests arriving meanwhile, so it cannot hold a lone review until all of its own are done.

A stand-in handler records each ``predict_fn`` call; its first call waits until the test has queued the lone
request, so the order of calls is fixed, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from model_deploy.local.host import LONG_REVIEW_CHARACTERS, REQUEST_CHUNK, ModelHost
from model_deploy.stage_config import ServingSettings

BATCH = 16


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.first_call_may_end = threading.Event()

    def handler(self) -> ModuleType:
        module = ModuleType("recording_handler")
        module.ELEMENTWISE_PREDICT = True  # type: ignore[attr-defined]
        module.model_fn = lambda model_dir: None  # type: ignore[attr-defined]
        module.input_fn = lambda body, content_type: json.loads(body)  # type: ignore[attr-defined]
        module.output_fn = lambda predictions, accept: (json.dumps(predictions), accept)  # type: ignore[attr-defined]

        def predict_fn(reviews: list[str], model: Any) -> list[str]:
            self.calls.append(list(reviews))
            if len(self.calls) == 1:
                assert self.first_call_may_end.wait(60), "the test never queued its lone request"
            if "fail" in reviews:
                raise ValueError("a review the model refuses")
            return [f"answer to {review}" for review in reviews]

        module.predict_fn = predict_fn  # type: ignore[attr-defined]
        return module


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def host(recorder: Recorder, tmp_path: Path) -> Iterator[ModelHost]:
    settings = ServingSettings(max_batch_size=BATCH, max_batch_delay_ms=0)
    host = ModelHost(recorder.handler(), None, tmp_path / "work", settings, "fair")
    yield host
    host.close()


async def invoke(host: ModelHost, reviews: list[str]) -> list[str]:
    body, _ = await host.invoke(json.dumps(reviews).encode(), "application/json", "application/json")
    return json.loads(body)


async def queued(host: ModelHost, jobs: int) -> None:
    deadline = time.monotonic() + 60
    while len(host._queue) < jobs:
        assert time.monotonic() < deadline, "the request was never queued"
        await asyncio.sleep(0.01)


def test_a_lone_review_is_answered_between_the_chunks_of_a_large_request(
    host: ModelHost, recorder: Recorder
) -> None:
    large = [f"review {n}" for n in range(64)]

    async def scenario() -> tuple[list[str], list[str]]:
        first = asyncio.ensure_future(invoke(host, large))
        while not recorder.calls:
            await asyncio.sleep(0.01)
        lone = asyncio.ensure_future(invoke(host, ["the lone review"]))
        await queued(host, 1)
        recorder.first_call_may_end.set()
        return await first, await lone

    answers, lone = asyncio.run(scenario())
    assert answers == [f"answer to {review}" for review in large]  # whole, and in order
    assert lone == ["answer to the lone review"]
    assert recorder.calls[0] == large[:REQUEST_CHUNK]
    assert recorder.calls[1][0] == "the lone review"  # the next call, not after the other 60 reviews
    assert max(len(call) for call in recorder.calls) <= min(BATCH, REQUEST_CHUNK + 1)
    assert sum(len(call) for call in recorder.calls) == 65


def test_a_chunk_that_fails_fails_its_own_request_only(host: ModelHost, recorder: Recorder) -> None:
    failing = [f"review {n}" for n in range(20)] + ["fail"] + [f"review {n}" for n in range(20, 40)]

    async def scenario() -> tuple[BaseException | list[str], list[str]]:
        first = asyncio.ensure_future(invoke(host, failing))
        while not recorder.calls:
            await asyncio.sleep(0.01)
        other = asyncio.ensure_future(invoke(host, ["fine"]))
        await queued(host, 1)
        recorder.first_call_may_end.set()
        outcome = (await asyncio.gather(first, return_exceptions=True))[0]
        return outcome, await other

    outcome, other = asyncio.run(scenario())
    assert isinstance(outcome, ValueError) and "refuses" in str(outcome)
    assert other == ["answer to fine"]
    assert not any("review 39" in call for call in recorder.calls)  # nothing after the failure was run


def test_a_short_review_is_never_batched_with_nor_waits_behind_more_than_one_long_review(
    host: ModelHost, recorder: Recorder
) -> None:
    """Long reviews (past what the model reads) go one per chunk, in a call after the short reviews of the batch."""
    long = [f"{n} " + "x" * LONG_REVIEW_CHARACTERS for n in range(6)]
    mixed = ["short a", "short b", long[0], long[1], "short c", *long[2:]]

    async def scenario() -> tuple[list[str], list[str]]:
        first = asyncio.ensure_future(invoke(host, mixed))
        while not recorder.calls:
            await asyncio.sleep(0.01)
        lone = asyncio.ensure_future(invoke(host, ["the lone review"]))
        await queued(host, 1)
        recorder.first_call_may_end.set()
        return await first, await lone

    answers, lone = asyncio.run(scenario())
    assert answers == [f"answer to {review}" for review in mixed]  # whole, and in order
    assert lone == ["answer to the lone review"]
    assert recorder.calls[0] == ["short a", "short b"]  # the chunk stops before the first long review
    assert recorder.calls[1] == ["the lone review"]  # alone: not padded to the long review that follows
    assert recorder.calls[2] == [long[0]]
    assert all(sum(review in long for review in call) <= 1 for call in recorder.calls)
    assert all(not (set(call) & set(long)) or len(call) == 1 for call in recorder.calls)
