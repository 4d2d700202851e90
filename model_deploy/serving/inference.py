"""SageMaker inference handler of the review sentiment model.

The SageMaker PyTorch serving container imports this file from ``model.tar.gz/code/`` and calls
``model_fn(model_dir)`` once, then ``input_fn(body, content_type)`` -> ``predict_fn(reviews, model)`` ->
``output_fn(predictions, accept)`` per request. It imports nothing from the template but ``token_cut.py``,
the file next to it in ``code/`` (the processing step cuts texts with the same one), and otherwise only the
standard library, ``torch``, ``transformers`` and ``onnxruntime`` (``requirements.txt`` next to it).

Backend (``INFERENCE_BACKEND``, from the stage's ``serving.backend``): ``auto`` serves the package's int8 ONNX
model (:data:`ONNX_MODEL_FILE`, which the evaluation step adds only when it answers the test split like the
PyTorch model) with ONNX Runtime on a CPU, and the PyTorch model otherwise (on a GPU, or when the package has
none); ``onnx`` requires the int8 model; ``pytorch`` never uses it. The log says which was loaded.

Requests (one or more reviews):

- ``application/json``: ``{"features": ["text", ...]}`` (what the course's clients send), ``{"inputs": ...}``
  (the Hugging Face style) or a JSON list of strings;
- ``application/jsonlines``: one such object per line;
- ``text/csv``: one review per line (a line with unquoted commas is still one review; quote multi-line reviews).

Responses, in the ``Accept`` type (``application/json``: a list; ``application/jsonlines``: one line each), one
result per review in request order::

    {"predicted_label": 1, "sentiment": "positive", "probability": 0.93,
     "probabilities": {"negative": 0.02, "neutral": 0.05, "positive": 0.93},
     "tokens_read": 57, "truncated": false}

``tokens_read`` is how many tokens of the review the model read (special tokens included), and ``truncated``
says the review was longer than the model's ``max_length``: only its start was read, the rest did not count.

A bad request raises :class:`InvalidRequest`, whose ``status_code`` (400, 406, 413 or 415) the serving layer
returns with the message; it never yields a prediction for input it did not understand.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# Before torch loads OpenMP, which reads this once. With OpenMP's default, a thread that reaches a barrier spins
# for its partner; when other processes hold the cores, the partner is not running and the spin burns its
# turn: measured on 2 busy cores (load ~9), 2 threads fell to 0.5-2 texts/s (1 thread: 9-17/s); with PASSIVE,
# 2 threads gave 26-29/s. A value set by the deployment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

logger = logging.getLogger(__name__)


def _sibling(name: str) -> ModuleType:
    """The module in ``<name>.py`` next to this file. The serving container puts ``code/`` on ``sys.path``,
    but this handler is also loaded from its file alone (the local endpoint server, tests), and two loaded
    versions must each get their own copy."""
    spec = importlib.util.spec_from_file_location(
        f"{__name__}_{name}", Path(__file__).with_name(f"{name}.py")
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"{name}.py is missing next to {__file__}: the serving code is incomplete")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


token_cut = _sibling("token_cut")

JSON = "application/json"
JSON_LINES = "application/jsonlines"
CSV = "text/csv"
CONTENT_TYPES = (JSON, JSON_LINES, CSV)
ACCEPT_TYPES = (JSON, JSON_LINES)
_ALIASES = {"application/x-jsonlines": JSON_LINES, "application/jsonl": JSON_LINES}

SENTIMENT_NAMES = {-1: "negative", 0: "neutral", 1: "positive"}
"""Sentiment value -> name; the values themselves come from the model's own ``config.id2label``."""

MAX_REVIEWS_PER_REQUEST = int(os.environ.get("MAX_REVIEWS_PER_REQUEST", "64"))
"""More reviews than this in one request is refused (413): one request is one batch through the model."""

PREDICT_CHUNK_SIZE = int(os.environ.get("PREDICT_CHUNK_SIZE", "8"))
"""Reviews per forward pass, after sorting a request's (or a server batch's) reviews by length."""

PADDING_SLACK = 1.25
"""A forward pass holds reviews whose longest is at most this many times its shortest (at most 25% padding)."""

MAX_REVIEW_CHARACTERS = 1_000_000
"""A longer review (or CSV field) is refused (413); the model reads only its first ``max_length`` tokens."""
csv.field_size_limit(MAX_REVIEW_CHARACTERS)  # the csv module's own default, 128 KiB, is below a 6 MB body

ELEMENTWISE_PREDICT = True
"""``predict_fn`` maps a list of reviews to one result per review, in order, each independent of the others.

A server may therefore concatenate the reviews of several concurrent requests into one ``predict_fn`` call
and split the results back (the local endpoint server does, for throughput). A handler without this flag is
called once per request.
"""

try:  # In the serving container: an error the toolkit answers with our status code instead of a 500.
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ServingError
except ImportError:  # Elsewhere (tests, the local server): the same constructor and attributes.

    class _ServingError(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


SERVER_BATCHING = int(os.environ.get("SAGEMAKER_TS_BATCH_SIZE") or "1") > 1
"""The serving container batches requests (``SAGEMAKER_TS_BATCH_SIZE`` > 1, set from the stage config).

Its inference toolkit then still calls ``input_fn`` -> ``predict_fn`` -> ``output_fn`` once per request, but
hands every request of the batch the *first* request's Content-Type and Accept, and an exception raised for one
request fails them all (it answers one error for the whole batch). So, with batching on, the handler reads each
body's format from the body itself and answers a bad request with its own ``{"error", "status_code"}`` body
(HTTP 200: the toolkit cannot set one request's status) rather than raising.
"""


@dataclass(frozen=True)
class RejectedRequest:
    """A request refused under server batching: answered on its own instead of failing the batch."""

    message: str
    status_code: int


class InvalidRequest(_ServingError, ValueError):
    """A client error: ``status_code`` is the HTTP status, ``message`` names the problem and where."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(status_code, message, message)

    def __str__(self) -> str:
        return self.message


BACKEND_ENVIRONMENT = "INFERENCE_BACKEND"
BACKENDS = ("auto", "onnx", "pytorch")
ONNX_MODEL_FILE = "onnx/model.int8.onnx"
"""The int8 model in the package (``model_build/steps/onnx_int8.py`` ``INT8_MODEL_FILE`` writes it there)."""


@dataclass
class SentimentModel:
    """What ``model_fn`` loads once: the model, its tokenizer, and how class indices map to sentiments."""

    model: Any
    """The PyTorch model, or ``None`` when ``session`` serves."""
    tokenizer: Any
    sentiments: list[int]
    """Class index -> sentiment value (-1, 0, 1), read from the model's ``id2label``."""
    max_length: int
    device: torch.device
    session: Any = None
    """The ONNX Runtime session of the int8 model, when it serves."""

    @property
    def backend(self) -> str:
        """What answers: ``onnx-int8`` or ``pytorch``."""
        return "pytorch" if self.session is None else "onnx-int8"


# ------------------------------------------------------------------------------------------ model_fn
def model_fn(model_dir: str) -> SentimentModel:
    """The serving container's entry: :func:`load_model` with the backend its environment names."""
    return load_model(model_dir, os.environ.get(BACKEND_ENVIRONMENT) or "auto")


def load_model(model_dir: str, backend: str) -> SentimentModel:
    """The model of ``model_dir``, served by ``backend`` (:data:`BACKENDS`; see the module docstring).

    Tests and scripts that load a package in-process call it directly; the container (and the local endpoint
    server, which sets the stage's variable around the call) calls :func:`model_fn`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"{BACKEND_ENVIRONMENT}={backend!r}: use one of {', '.join(BACKENDS)}")
    onnx_file = Path(model_dir) / ONNX_MODEL_FILE
    if backend == "onnx" and not onnx_file.is_file():
        raise ValueError(
            f"{BACKEND_ENVIRONMENT}=onnx but the package has no {ONNX_MODEL_FILE}: the evaluation step adds it "
            "only when the int8 model passes its parity check (evaluation.json onnx_int8.message says why it "
            "did not); serve this package with 'auto' or 'pytorch'"
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_onnx = backend == "onnx" or (backend == "auto" and onnx_file.is_file() and device.type == "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if use_onnx:
        config = AutoConfig.from_pretrained(model_dir)
        model, session, device = None, _onnx_session(onnx_file), torch.device("cpu")
    else:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).eval()
        config, session = model.config, None
    loaded = SentimentModel(
        model,
        tokenizer,
        _sentiments_by_class(config.id2label),
        _max_length(tokenizer, config),
        device,
        session,
    )
    logger.info(
        "loaded %s: %s on %s (INFERENCE_BACKEND=%s, int8 model in the package: %s), classes %s, max length %d, "
        "%d torch threads, OMP_WAIT_POLICY=%s",
        *(
            model_dir,
            loaded.backend,
            device,
            backend,
            "yes" if onnx_file.is_file() else "no",
            loaded.sentiments,
            loaded.max_length,
            torch.get_num_threads(),
            os.environ.get("OMP_WAIT_POLICY"),
        ),
    )
    return loaded


def _onnx_session(path: Path) -> Any:
    """ONNX Runtime on the CPU, its threads waiting without spinning (as ``OMP_WAIT_POLICY=PASSIVE`` above)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _sentiments_by_class(id2label: dict[int, str]) -> list[int]:
    try:
        sentiments = [int(id2label[index]) for index in range(len(id2label))]
    except (KeyError, ValueError) as error:
        raise ValueError(f"the model's id2label {id2label} does not map class indices to -1/0/1") from error
    if sorted(sentiments) != sorted(SENTIMENT_NAMES):
        raise ValueError(f"the model's id2label {id2label} does not cover the sentiments -1, 0 and 1")
    return sentiments


def _max_length(tokenizer: Any, config: Any) -> int:
    """The tokenizer's ``model_max_length`` (training saves its ``--max-seq-length`` there), within bounds."""
    positions = getattr(config, "max_position_embeddings", 512)
    if config.model_type in ("roberta", "xlm-roberta", "camembert"):
        positions -= config.pad_token_id + 1  # RoBERTa's positions start after the padding index
    return min(tokenizer.model_max_length, positions)


# ------------------------------------------------------------------------------------------ input_fn
def input_fn(request_body: str | bytes | bytearray, request_content_type: str) -> list[str] | RejectedRequest:
    """Parse a request into its reviews; refuse anything that is not one or more non-empty strings.

    Under the serving container's batching (:data:`SERVER_BATCHING`) the declared type may be another
    request's, so the body's own format decides, and a bad request becomes a :class:`RejectedRequest` that
    ``output_fn`` answers, instead of an exception that would fail every request of the batch.
    """
    if not SERVER_BATCHING:
        return _parse(request_body, request_content_type)
    try:
        return _parse(request_body, _format_of(request_body, request_content_type))
    except InvalidRequest as error:
        return RejectedRequest(error.message, error.status_code)


def _format_of(body: str | bytes | bytearray, declared: str) -> str:
    """A JSON document, else JSON lines, else CSV: what the body is, whatever the header said."""
    try:
        text = _decode(body)
    except InvalidRequest:
        return declared
    if _media_type(declared) not in CONTENT_TYPES:
        return declared  # refused below with the type the client sent
    try:
        json.loads(text)
        return JSON
    except (ValueError, RecursionError):
        pass
    try:
        for line in text.splitlines():
            if line.strip():
                json.loads(line)
        return JSON_LINES
    except (ValueError, RecursionError):
        return CSV


def _parse(request_body: str | bytes | bytearray, request_content_type: str) -> list[str]:
    content_type = _media_type(request_content_type)
    if content_type not in CONTENT_TYPES:
        raise InvalidRequest(
            f"unsupported content type {request_content_type!r}; use one of {', '.join(CONTENT_TYPES)}", 415
        )
    text = _decode(request_body)
    if not text.strip():
        raise InvalidRequest("the request body is empty")
    if content_type == JSON:
        reviews = _reviews_from_json(_load_json(text, "the body"), "the body")
    elif content_type == JSON_LINES:
        reviews = _reviews_from_json_lines(text)
    else:
        reviews = _reviews_from_csv(text)
    if len(reviews) > MAX_REVIEWS_PER_REQUEST:
        raise InvalidRequest(
            f"{len(reviews)} reviews in one request; at most {MAX_REVIEWS_PER_REQUEST} "
            "(MAX_REVIEWS_PER_REQUEST): split the request",
            413,
        )
    return reviews


def _media_type(header: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    media_type = (header or "").split(";")[0].strip().lower()
    return _ALIASES.get(media_type, media_type)


def _decode(body: str | bytes | bytearray) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, bytes | bytearray):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidRequest(f"the body is not UTF-8 text (byte {error.start})") from error
    raise InvalidRequest(f"the body is a {type(body).__name__}, not text")


def _load_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"{where} is not valid JSON: {error.msg} at line {error.lineno}") from error
    except RecursionError:
        raise InvalidRequest(f"{where} is JSON nested too deeply to parse") from None
    except ValueError as error:  # an integer of more digits than Python converts (sys.int_info)
        reason = str(error).split(";")[0]
        raise InvalidRequest(f"{where} cannot be read as JSON: {reason}") from None


def _reviews_from_json(document: Any, where: str) -> list[str]:
    if isinstance(document, dict):
        keys = [key for key in ("features", "inputs") if key in document]
        if len(keys) != 1:
            raise InvalidRequest(
                f"{where} must have exactly one of the keys 'features' or 'inputs'; it has {sorted(document)}"
            )
        key = keys[0]
        return _checked_reviews(document[key], f"{where}: {key}")
    return _checked_reviews(document, where)


def _json_kind(value: Any) -> str:
    """What a JSON value is, in the words of JSON: "a number", "an object", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    kinds: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _checked_reviews(value: Any, where: str) -> list[str]:
    """A string or a non-empty list of non-empty strings; the message says which item is wrong."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be a string or a list of strings, not {_json_kind(value)}")
    if not value:
        raise InvalidRequest(f"{where} is an empty list: send at least one review")
    for index, review in enumerate(value):
        if not isinstance(review, str):
            raise InvalidRequest(f"{where}[{index}] is {_json_kind(review)}, not a string")
        _check_text(review, f"{where}[{index}]")
    return value


def _check_text(review: str, where: str) -> None:
    """Empty, unencodable (a lone surrogate from a JSON escape) or absurdly long text is the client's error."""
    if not review.strip():
        raise InvalidRequest(f"{where} is empty")
    if len(review) > MAX_REVIEW_CHARACTERS:
        raise InvalidRequest(f"{where} has {len(review)} characters; at most {MAX_REVIEW_CHARACTERS}", 413)
    try:
        review.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequest(
            f"{where} is not valid Unicode text: {error.reason} at character {error.start}"
        ) from None


def _reviews_from_json_lines(text: str) -> list[str]:
    reviews = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines (e.g. a trailing newline) separate nothing
        where = f"line {number}"
        reviews.extend(_reviews_from_json(_load_json(line, where), where))
    return reviews


def _reviews_from_csv(text: str) -> list[str]:
    reviews = []
    reader = csv.reader(io.StringIO(text.rstrip("\r\n")))
    try:
        for row in reader:
            review = ",".join(row)  # unquoted commas split a review into fields: put it back together
            _check_text(review, f"line {reader.line_num}")
            reviews.append(review)
    except csv.Error as error:
        raise InvalidRequest(f"the CSV body cannot be read at line {reader.line_num}: {error}", 413) from None
    return reviews


# ------------------------------------------------------------------------------------------ predict_fn
def predict_fn(reviews: list[str] | RejectedRequest, model: SentimentModel) -> Any:
    """Every review truncated to the model's max length, run in chunks of reviews of similar length.

    A padded batch costs a forward pass over its longest review for every row: sorting by length first and
    running at most :data:`PREDICT_CHUNK_SIZE` at a time, of lengths within :data:`PADDING_SLACK` of each other,
    keeps the padding small (measured on 2 CPU cores: ~1.7x the texts/s of one padded batch of 16 random
    reviews with PyTorch; with the int8 model, whose forward pass costs less next to the padding, chunks of 8
    by count alone gave 13 texts/s, within the slack 17). Results come back in request order.
    """
    if isinstance(reviews, RejectedRequest):
        return reviews
    encoded, truncated = _encode(reviews, model)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    rows: list[list[float]] = [[] for _ in reviews]
    for chunk in _similar_lengths(lengths):
        features = {key: [encoded[key][index] for index in chunk] for key in encoded}
        for index, row in zip(chunk, _probabilities(features, model), strict=True):
            rows[index] = row
    return [
        _result(row, model.sentiments, len(ids), cut)
        for row, ids, cut in zip(rows, encoded["input_ids"], truncated, strict=True)
    ]


def _similar_lengths(lengths: list[int]) -> list[list[int]]:
    """Indices sorted by length, cut into chunks of at most :data:`PREDICT_CHUNK_SIZE` whose longest is within
    :data:`PADDING_SLACK` times their shortest."""
    chunks: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        current = chunks[-1] if chunks else None
        if (
            current is None
            or len(current) >= PREDICT_CHUNK_SIZE
            or lengths[index] > lengths[current[0]] * PADDING_SLACK
        ):
            chunks.append([index])
        else:
            current.append(index)
    return chunks


def _probabilities(features: dict[str, list[Any]], model: SentimentModel) -> list[list[float]]:
    """Softmax rows of one chunk of encoded reviews, padded to its longest, by the loaded backend."""
    if model.session is None:
        batch = model.tokenizer.pad(features, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            rows: list[list[float]] = (
                torch.softmax(model.model(**batch).logits.float(), dim=-1).cpu().tolist()
            )
        return rows
    arrays = model.tokenizer.pad(features, return_tensors="np")
    shape = arrays["input_ids"].shape
    feed = {
        graph_input.name: (
            arrays[graph_input.name].astype(numpy.int64)
            if graph_input.name in arrays
            else numpy.zeros(
                shape, dtype=numpy.int64
            )  # token_type_ids the tokenizer did not give: PyTorch's default
        )
        for graph_input in model.session.get_inputs()
    }
    logits = model.session.run(["logits"], feed)[0].astype(numpy.float64)
    exp = numpy.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).tolist()


def _encode(reviews: list[str], model: SentimentModel) -> tuple[Any, list[bool]]:
    """The tokenizer's encoding of every review, truncated to ``max_length``, and whether each was truncated.

    Each review is cut first (:mod:`token_cut`): a 90,000-character review is tokenized in the time of a
    short one, to the same ids. A review whose encoding fills ``max_length`` was truncated if it was cut, or
    if asking for one more token gets one.
    """
    limit = model.max_length
    kept = [token_cut.cut(review, limit) for review in reviews]
    encoded = model.tokenizer(kept, truncation=True, max_length=limit)
    whole = [
        index
        for index, review in enumerate(reviews)
        if token_cut.must_tokenize_whole(review, kept[index], len(encoded["input_ids"][index]), limit)
    ]
    if whole:
        again = model.tokenizer([reviews[index] for index in whole], truncation=True, max_length=limit)
        for position, index in enumerate(whole):
            kept[index] = reviews[index]
            for key in encoded:
                encoded[key][index] = again[key][position]
    truncated = [len(text) < len(review) for text, review in zip(kept, reviews, strict=True)]
    full = [
        index for index, ids in enumerate(encoded["input_ids"]) if len(ids) >= limit and not truncated[index]
    ]
    if full:
        longer = model.tokenizer([kept[index] for index in full], truncation=True, max_length=limit + 1)
        for index, ids in zip(full, longer["input_ids"], strict=True):
            truncated[index] = len(ids) > limit
    return encoded, truncated


def _result(row: list[float], sentiments: list[int], tokens_read: int, truncated: bool) -> dict[str, Any]:
    best = max(range(len(row)), key=row.__getitem__)
    by_name = {SENTIMENT_NAMES[sentiment]: row[index] for index, sentiment in enumerate(sentiments)}
    return {
        "predicted_label": sentiments[best],
        "sentiment": SENTIMENT_NAMES[sentiments[best]],
        "probability": row[best],
        "probabilities": {name: by_name[name] for name in SENTIMENT_NAMES.values()},
        "tokens_read": tokens_read,
        "truncated": truncated,
    }


# ------------------------------------------------------------------------------------------ output_fn
def output_fn(predictions: list[dict[str, Any]] | RejectedRequest, accept: str) -> tuple[str, str]:
    """Serialize in the first supported type of ``Accept``; returns (body, content type)."""
    if isinstance(predictions, RejectedRequest):
        return json.dumps({"error": predictions.message, "status_code": predictions.status_code}), JSON
    media_type = _accepted_type(accept)
    if media_type == JSON:
        return json.dumps(predictions), JSON
    return "".join(json.dumps(prediction) + "\n" for prediction in predictions), JSON_LINES


def _accepted_type(accept: str | None) -> str:
    """``*/*`` or nothing means JSON; ``a, b;q=0.5`` takes the first supported of the list."""
    candidates = [_media_type(part) for part in (accept or "").split(",")]
    for candidate in candidates:
        if candidate in ("", "*/*", "application/*"):
            return JSON
        if candidate in ACCEPT_TYPES:
            return candidate
    raise InvalidRequest(f"cannot answer in {accept!r}; accept one of {', '.join(ACCEPT_TYPES)}", 406)
