"""The serving handler as the SageMaker PyTorch serving container calls it: every content type, every bad input.

The handler is loaded from its file, alone, the way the container loads ``model.tar.gz/code/inference.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import features
import pytest
import torch

from model_build.pipeline_spec import PIPELINE, REGISTER, SERVING_SOURCE_DIR
from tests.model_build.review_splits import labelled_model

HANDLER_PATH = Path(__file__).resolve().parents[2] / SERVING_SOURCE_DIR / "inference.py"
REVIEWS = [
    "I love this dress, it fits perfectly and the fabric is soft.",
    "Terrible quality, it ripped after one wash. Returning it.",
    "It's okay, nothing special, the color is a bit off.",
]


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serving_inference_under_test", HANDLER_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def handler() -> ModuleType:
    return load_handler()


@pytest.fixture(scope="module")
def model(handler: ModuleType, tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path):
    return handler.model_fn(str(labelled_model(tiny_roberta_dir, tmp_path_factory.mktemp("model"), 32)))


def invoke(
    handler: ModuleType, model, body: str | bytes, content_type: str, accept: str = "application/json"
):
    """The toolkit's default transform: input_fn -> predict_fn -> output_fn."""
    return handler.output_fn(handler.predict_fn(handler.input_fn(body, content_type), model), accept)


def test_handler_is_self_contained_and_has_the_toolkit_signatures(handler: ModuleType) -> None:
    tree = ast.parse(HANDLER_PATH.read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    # numpy comes with torch; onnxruntime from code/requirements.txt (the serving container installs it).
    allowed = {
        "__future__",
        "sagemaker_inference",
        "torch",
        "numpy",
        "onnxruntime",
        "transformers",
        *sys.stdlib_module_names,
    }
    assert imported <= allowed, (
        f"the handler imports {imported - allowed}: it must run from model.tar.gz's code/ alone"
    )
    # The one file it loads from beside it (training copies the serving folder's *.py into code/).
    assert handler.token_cut.__file__ == str(HANDLER_PATH.with_name("token_cut.py"))
    # The toolkit passes exactly these arguments, counted by inspect.signature.
    arity = {name: len(inspect.signature(getattr(handler, name)).parameters) for name in
             ("model_fn", "input_fn", "predict_fn", "output_fn")}  # fmt: skip
    assert arity == {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2}
    assert handler.SENTIMENT_NAMES == features.SENTIMENT_NAMES
    register = PIPELINE.step(REGISTER)
    assert set(register.content_types) == set(handler.CONTENT_TYPES)
    assert set(register.response_types) == set(handler.ACCEPT_TYPES)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"features": REVIEWS}), "application/json"),
        (json.dumps({"inputs": REVIEWS}).encode(), "application/json; charset=utf-8"),
        (json.dumps(REVIEWS), "application/json"),
        ("".join(json.dumps({"features": [review]}) + "\n" for review in REVIEWS), "application/jsonlines"),
        (
            json.dumps({"features": REVIEWS[:2]}) + "\n\n" + json.dumps({"features": REVIEWS[2:]}),
            "application/x-jsonlines",
        ),
        ("\n".join(REVIEWS) + "\n", "text/csv"),
        ("\r\n".join(f'"{review}"' for review in REVIEWS).encode(), "text/csv"),
    ],
    ids=[
        "json-features",
        "json-inputs-bytes",
        "json-list",
        "jsonlines",
        "jsonlines-batched",
        "csv",
        "csv-quoted",
    ],
)
def test_every_content_type_gives_one_result_per_review(
    handler: ModuleType, model, body, content_type
) -> None:
    assert handler.input_fn(body, content_type) == REVIEWS
    response, response_type = invoke(handler, model, body, content_type)
    assert response_type == "application/json"
    results = json.loads(response)
    assert len(results) == len(REVIEWS)
    for result in results:
        probabilities = result["probabilities"]
        assert list(probabilities) == ["negative", "neutral", "positive"]
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert result["probability"] == max(probabilities.values())
        assert result["sentiment"] == max(probabilities, key=probabilities.get)
        assert result["predicted_label"] in (-1, 0, 1)
        assert features.SENTIMENT_NAMES[result["predicted_label"]] == result["sentiment"]


def test_answers_in_the_accepted_type(handler: ModuleType, model) -> None:
    body = json.dumps({"features": REVIEWS})
    as_json, _ = invoke(handler, model, body, "application/json", "*/*")
    lines, response_type = invoke(handler, model, body, "application/json", "application/jsonlines")
    assert response_type == "application/jsonlines"
    assert [json.loads(line) for line in lines.splitlines()] == json.loads(as_json)
    _, chosen = invoke(handler, model, body, "application/json", "text/html, application/jsonlines;q=0.9")
    assert chosen == "application/jsonlines"


def test_batching_and_truncation_do_not_change_a_prediction(handler: ModuleType, model) -> None:
    """Pads are masked: a review gets the same answer alone or next to longer ones; overlong text is cut."""
    batched = handler.predict_fn(REVIEWS, model)
    alone = [handler.predict_fn([review], model)[0] for review in REVIEWS]
    for together, single in zip(batched, alone, strict=True):
        assert together["predicted_label"] == single["predicted_label"]
        for name, probability in together["probabilities"].items():
            assert probability == pytest.approx(single["probabilities"][name], abs=1e-4)
    assert model.max_length == 32  # the saved tokenizer's model_max_length
    long_review = " ".join(REVIEWS * 200)  # thousands of tokens: more than the model's positions
    result = handler.predict_fn([long_review], model)[0]
    cut = model.tokenizer(long_review, truncation=True, max_length=32, return_tensors="pt")
    assert cut["input_ids"].shape == (1, 32)
    with torch.inference_mode():
        expected = torch.softmax(model.model(**cut).logits, dim=-1)[0].tolist()
    assert list(result["probabilities"].values()) == pytest.approx(
        [expected[model.sentiments.index(sentiment)] for sentiment in (-1, 0, 1)], abs=1e-5
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("{}", "application/xml", 415, "unsupported content type 'application/xml'"),
        ("", "application/json", 400, "the request body is empty"),
        ("   \n", "text/csv", 400, "the request body is empty"),
        ('{"features": ["good"', "application/json", 400, "the body is not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "not UTF-8"),
        ('{"features": []}', "application/json", 400, "features is an empty list"),
        ('{"features": ["fine", "", "ok"]}', "application/json", 400, "features[1] is empty"),
        ('{"features": ["fine", "  "]}', "application/json", 400, "features[1] is empty"),
        ('{"inputs": ["fine", 3]}', "application/json", 400, "inputs[1] is a number, not a string"),
        ('{"features": ["a"], "inputs": ["b"]}', "application/json", 400, "exactly one of the keys"),
        ('{"text": "a"}', "application/json", 400, "exactly one of the keys"),
        ('{"features": {"a": 1}}', "application/json", 400, "must be a string or a list of strings"),
        ("42", "application/json", 400, "must be a string or a list of strings"),
        (
            '{"features": ["ok"]}\n{"features": [null]}',
            "application/jsonlines",
            400,
            "line 2: features[0] is null",
        ),
        ('{"features": ["ok"]}\nnot json', "application/jsonlines", 400, "line 2 is not valid JSON"),
        ("good\n\nbad", "text/csv", 400, "line 2 is empty"),
    ],
)
def test_bad_input_is_a_client_error_naming_the_problem(
    handler: ModuleType, body, content_type, status, message
) -> None:
    with pytest.raises(handler.InvalidRequest) as caught:
        handler.input_fn(body, content_type)
    assert caught.value.status_code == status
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_too_many_reviews_is_413(handler: ModuleType) -> None:
    limit = handler.MAX_REVIEWS_PER_REQUEST
    assert len(handler.input_fn(json.dumps(["fine"] * limit), "application/json")) == limit
    with pytest.raises(handler.InvalidRequest) as caught:
        handler.input_fn("\n".join(["fine"] * (limit + 1)), "text/csv")
    assert caught.value.status_code == 413
    assert f"at most {limit}" in str(caught.value)


def test_unsupported_accept_is_406(handler: ModuleType, model) -> None:
    with pytest.raises(handler.InvalidRequest) as caught:
        invoke(handler, model, '["fine"]', "application/json", "text/csv")
    assert caught.value.status_code == 406
    assert "cannot answer in 'text/csv'" in str(caught.value)


def test_limit_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_REVIEWS_PER_REQUEST", "2")
    limited = load_handler()
    with pytest.raises(limited.InvalidRequest, match="3 reviews in one request; at most 2"):
        limited.input_fn('["a", "b", "c"]', "application/json")


def test_a_model_without_the_sentiment_label_map_is_refused(
    handler: ModuleType, tiny_roberta_dir: Path
) -> None:
    with pytest.raises(ValueError, match="id2label"):
        handler.model_fn(str(tiny_roberta_dir))  # LABEL_0.. : which class is which sentiment is unknown


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_deployment_says_otherwise(
    preset: str | None, expected: str
) -> None:
    """Set before torch loads OpenMP (which reads it once): spinning threads collapsed under CPU contention."""
    code = (
        "import importlib.util, os, sys; assert 'torch' not in sys.modules; "
        f"spec = importlib.util.spec_from_file_location('h', {str(HANDLER_PATH)!r}); "
        "module = importlib.util.module_from_spec(spec); sys.modules['h'] = module; "
        "spec.loader.exec_module(module); print(os.environ['OMP_WAIT_POLICY'])"
    )
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        environment["OMP_WAIT_POLICY"] = preset
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected


def test_a_forward_pass_holds_reviews_of_similar_length_only(handler: ModuleType) -> None:
    """Sorted by length, at most PREDICT_CHUNK_SIZE a pass, the longest within PADDING_SLACK of the shortest."""
    lengths = [10, 100, 11, 12, 13, 90, 95, 14, 15, 16, 17, 18, 19, 12]
    chunks = handler._similar_lengths(lengths)
    assert sorted(index for chunk in chunks for index in chunk) == list(range(len(lengths)))
    assert [[lengths[index] for index in chunk] for chunk in chunks] == [
        [10, 11, 12, 12],  # 13 > 10 * 1.25
        [13, 14, 15, 16],  # 17 > 13 * 1.25
        [17, 18, 19],
        [90, 95, 100],
    ]
    assert handler.PADDING_SLACK == 1.25
    assert all(len(chunk) <= handler.PREDICT_CHUNK_SIZE for chunk in handler._similar_lengths([50] * 20))
