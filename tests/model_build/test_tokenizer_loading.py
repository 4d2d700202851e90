"""The processing step loads a model folder's tokenizer without ``transformers``: the same tokens either way."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import reviews_csv
import tokenization


def sample_texts(sample_csv: Path) -> list[str]:
    with sample_csv.open(newline="", encoding="utf-8") as handle:
        return [row["Review Text"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize("model", ["minilm_dir", "tiny_roberta_dir"])
def test_the_folder_and_the_transformers_loaders_give_the_same_tokens(
    model: str, request: pytest.FixtureRequest, sample_csv: Path
) -> None:
    folder: Path = request.getfixturevalue(model)
    texts = sample_texts(sample_csv)
    direct, _ = tokenization._tokenizer_from_folder(folder)
    wrapped, limit = tokenization._tokenizer_from_transformers(str(folder))
    for backend in (direct, wrapped):
        backend.enable_truncation(max_length=128)
        backend.no_padding()
    assert [e.ids for e in direct.encode_batch_fast(texts)] == [
        e.ids for e in wrapped.encode_batch_fast(texts)
    ]
    assert tokenization._tokenizer_from_folder(folder)[1] == limit == 512


def test_a_model_folder_is_tokenized_without_importing_transformers(minilm_dir: Path) -> None:
    code = (
        "import sys, tokenization; tokenization.load_tokenizer(sys.argv[1], 128); "
        "print(sorted(m for m in ('transformers', 'torch') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(minilm_dir)],
        cwd=Path(tokenization.__file__).parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_a_broken_tokenizer_file_is_named(tmp_path: Path, minilm_dir: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(minilm_dir, folder)
    (folder / tokenization.TOKENIZER_FILE).write_text("{not json")
    with pytest.raises(reviews_csv.InputError, match="cannot load its tokenizer"):
        tokenization.load_tokenizer(str(folder), 128)


def test_a_sequence_longer_than_the_model_takes_is_refused(minilm_dir: Path) -> None:
    with pytest.raises(reviews_csv.InputError, match="longer than"):
        tokenization.load_tokenizer(str(minilm_dir), 513)
