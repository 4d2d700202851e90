"""Texts are cut before tokenizing (``token_cut``), by the processing step and by the serving handler alike:
the ids are those of the whole text, for WordPiece (MiniLM) and byte-level BPE (RoBERTa), whatever the text."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import token_cut
import tokenization
from transformers import AutoTokenizer

from model_build.pipeline_spec import SERVING_SOURCE_DIR
from tests.model_build.review_splits import labelled_model

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_LENGTH = 32

HOSTILE = {
    "words far past the limit": "ok " * 30_000,
    "a long review": "I love this dress, it fits perfectly and the fabric is soft. " * 400,
    "whitespace runs between words": ("great" + " " * 5_000 + "fit ") * 20,
    "newlines and tabs": "Runs small.\n\n\tOrder a size up,\r\nthe colour is lovely. " * 300,
    "one word with no whitespace": "a" * 20_000,
    "a long word after the budget": "fine " * 40 + "b" * 20_000,
    "accents, CJK and emoji": "Très joli, 非常好 👗 робе — ça va. " * 500,
    "punctuation only": "!?.,;" * 5_000,
    "short": "Lovely.",
}


def sample_texts(sample_csv: Path) -> list[str]:
    with sample_csv.open(newline="", encoding="utf-8") as handle:
        return [row["Review Text"] for row in csv.DictReader(handle) if row["Review Text"].strip()]


def load_handler() -> ModuleType:
    path = REPO_ROOT / SERVING_SOURCE_DIR / "inference.py"
    spec = importlib.util.spec_from_file_location("token_cut_handler_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_cut_ends_on_a_whole_word_within_the_budget() -> None:
    text = "word " * 10_000
    kept = token_cut.cut(text, 128)
    assert len(kept) <= 128 * token_cut.CHARS_PER_TOKEN and text.startswith(kept) and kept.endswith("word")
    assert token_cut.cut("short text", 128) == "short text"
    assert token_cut.cut("x" * 50_000, 128) == "x" * 50_000  # no whitespace to cut at: kept whole
    assert token_cut.must_tokenize_whole(text, kept, 100, 128)
    assert not token_cut.must_tokenize_whole(text, kept, 128, 128)
    assert not token_cut.must_tokenize_whole("short", "short", 3, 128)


def test_the_serving_handler_reads_the_same_file() -> None:
    served = REPO_ROOT / SERVING_SOURCE_DIR / "token_cut.py"
    assert served.resolve() == Path(token_cut.__file__).resolve()


@pytest.mark.parametrize("model", ["minilm_dir", "tiny_roberta_dir"])
def test_processing_gets_the_ids_of_the_whole_text(
    model: str, request: pytest.FixtureRequest, sample_csv: Path
) -> None:
    folder: Path = request.getfixturevalue(model)
    texts = [*HOSTILE.values(), *sample_texts(sample_csv)[:300]]
    tokenizer = tokenization.load_tokenizer(str(folder), MAX_LENGTH)
    tokenized = tokenization.tokenize(tokenizer, texts)
    got = [
        tokenized.values[start:end].tolist()
        for start, end in zip(tokenized.offsets[:-1], tokenized.offsets[1:], strict=True)
    ]
    assert got == [encoding.ids for encoding in tokenizer.encode_batch(texts)]


@pytest.mark.parametrize("model", ["minilm_dir", "tiny_roberta_dir"])
def test_the_handler_gets_the_ids_of_the_whole_text_and_says_what_it_truncated(
    model: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    folder: Path = request.getfixturevalue(model)
    handler = load_handler()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    exactly_at_limit = next(
        text
        for text in (" ".join(["fit"] * words) for words in range(1, MAX_LENGTH))
        if len(tokenizer(text)["input_ids"]) == MAX_LENGTH
    )
    reviews = [*HOSTILE.values(), exactly_at_limit, exactly_at_limit + " more"]
    encoded, truncated = handler._encode(reviews, SimpleNamespace(tokenizer=tokenizer, max_length=MAX_LENGTH))
    whole = tokenizer(reviews, truncation=True, max_length=MAX_LENGTH)
    assert encoded["input_ids"] == whole["input_ids"]
    assert encoded["attention_mask"] == whole["attention_mask"]
    untruncated = [len(tokenizer(review)["input_ids"]) > MAX_LENGTH for review in reviews]
    assert truncated == untruncated
    assert truncated[-2:] == [False, True]


def test_answers_say_how_many_tokens_were_read_and_whether_the_review_was_truncated(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    handler = load_handler()
    model = handler.model_fn(str(labelled_model(tiny_roberta_dir, tmp_path / "model", MAX_LENGTH)))
    short, long = handler.predict_fn(["Lovely dress.", "Lovely dress. " * 2_000], model)
    assert (short["truncated"], long["truncated"]) == (False, True)
    assert short["tokens_read"] == len(model.tokenizer("Lovely dress.")["input_ids"])
    assert long["tokens_read"] == MAX_LENGTH
