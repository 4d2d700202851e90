"""The handler under the SageMaker inference toolkit's own batch loop, as the PyTorch serving container runs it.

With ``SAGEMAKER_TS_BATCH_SIZE`` > 1 (the stage config sets it), TorchServe hands the toolkit's
``Transformer.transform(data, context)`` several requests at once; the toolkit then calls ``input_fn`` ->
``predict_fn`` -> ``output_fn`` once per request, with the first request's Content-Type and Accept for all,
and answers one error for the whole batch if any request raises. These tests drive the real toolkit
(``sagemaker-inference``) with a batch that mixes content types and holds one bad request.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler
from sagemaker_inference.transformer import Transformer

from tests.model_build.review_splits import labelled_model

HANDLER_DIR = Path(__file__).resolve().parents[2] / "model_deploy" / "serving"
REVIEWS = ["I love this dress, it fits perfectly.", "Terrible quality, it ripped. Returning it."]


class RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self.headers


class Context:
    """What TorchServe passes: system properties, one request processor per request, response setters."""

    def __init__(self, model_dir: Path, headers: list[dict[str, str]]) -> None:
        self.system_properties = {"model_dir": str(model_dir)}
        self.request_processor = [RequestProcessor(h) for h in headers]
        self.content_types: dict[int, str] = {}
        self.statuses: list[tuple[int, str]] = []

    def set_response_content_type(self, index: int, content_type: str) -> None:
        self.content_types[index] = content_type

    def set_response_status(self, code: int, phrase: str) -> None:
        self.statuses.append((code, phrase))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    return labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"), max_seq_length=32)


def transformer(monkeypatch: pytest.MonkeyPatch, batch_size: int) -> Transformer:
    """A toolkit Transformer importing the repository's handler as the container does (module ``inference``)."""
    monkeypatch.setenv("SAGEMAKER_TS_BATCH_SIZE", str(batch_size))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.syspath_prepend(str(HANDLER_DIR))
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    importlib.invalidate_caches()
    return Transformer(default_inference_handler=DefaultInferenceHandler())


MIXED_BATCH = [
    ({"Content-Type": "application/json", "Accept": "application/json"}, json.dumps({"features": REVIEWS})),
    ({"Content-Type": "text/csv", "Accept": "application/json"}, "\n".join(REVIEWS)),
    ({"Content-Type": "application/json", "Accept": "application/json"}, '{"features": 42}'),
    (
        {"Content-Type": "application/jsonlines", "Accept": "application/json"},
        json.dumps({"features": REVIEWS[0]}),
    ),
]


def test_with_server_batching_each_request_gets_its_own_answer(model_dir: Path, monkeypatch) -> None:
    toolkit = transformer(monkeypatch, batch_size=4)
    context = Context(model_dir, [headers for headers, _ in MIXED_BATCH])
    answers = toolkit.transform([{"body": body.encode()} for _, body in MIXED_BATCH], context)
    assert len(answers) == len(MIXED_BATCH)  # TorchServe needs one answer per request
    first, csv_request, bad, json_lines = (json.loads(answer) for answer in answers)
    assert [len(first), len(csv_request), len(json_lines)] == [2, 2, 1]  # the CSV body was read as CSV
    assert csv_request == first  # the same reviews, the same predictions
    assert bad["status_code"] == 400 and "features must be a string or a list of strings" in bad["error"]
    assert context.statuses == []  # nothing failed the batch


def test_without_the_batching_flag_one_bad_request_fails_the_whole_batch(
    model_dir: Path, monkeypatch
) -> None:
    """Why the handler must know: the toolkit answers a raising request with one error for every request."""
    toolkit = transformer(monkeypatch, batch_size=1)
    context = Context(model_dir, [headers for headers, _ in MIXED_BATCH])
    answers = toolkit.transform([{"body": body.encode()} for _, body in MIXED_BATCH], context)
    assert len(answers) == 1 and context.statuses and context.statuses[0][0] == 400
