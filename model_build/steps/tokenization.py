"""Tokenizing review text: the pretrained model's fast tokenizer, loaded offline, and one batched call per chunk."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import token_cut
from reviews_csv import InputError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Rows are tokenized in one batched Rust call per chunk; that parallelism is the point of batching. Set before
# `tokenizers` is imported (it reads the variable once); nothing here forks after tokenizing.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

# ------------------------------------------------------------------------------------------- tokenizing


def load_tokenizer(pretrained_model: str, max_seq_length: int) -> Tokenizer:
    """The model's fast (Rust) tokenizer, set to truncate at ``max_seq_length`` and not to pad.

    We call the ``tokenizers`` backend directly, which is what the ``transformers`` wrapper runs underneath,
    without the per-row Python conversion the wrapper adds. A model folder with the backend's own file
    (``tokenizer.json``) is loaded from it without importing ``transformers``, whose import (torch with it)
    takes seconds of a step that otherwise needs none of it; a model id, or a folder without that file, goes
    through ``AutoTokenizer``. Both give the same backend (a test compares them token for token).
    """
    folder = Path(pretrained_model)
    if (folder / TOKENIZER_FILE).is_file():
        backend, model_max_length = _tokenizer_from_folder(folder)
    else:
        backend, model_max_length = _tokenizer_from_transformers(pretrained_model)
    if model_max_length is not None and max_seq_length > model_max_length:
        raise InputError(
            f"--max-seq-length {max_seq_length} is longer than {pretrained_model!r} accepts "
            f"({model_max_length} tokens)"
        )
    backend.enable_truncation(max_length=max_seq_length)
    backend.no_padding()
    return backend


TOKENIZER_FILE = "tokenizer.json"
UNSET_MAX_LENGTH = 10**12
"""``transformers`` stands a huge number in for a model without a length limit; above this, there is none."""


def _tokenizer_from_folder(folder: Path) -> tuple[Tokenizer, int | None]:
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    except Exception as error:  # tokenizers raises a bare Exception on a file it cannot parse
        raise InputError(f"--pretrained-model {str(folder)!r}: cannot load its tokenizer: {error}") from error
    limit = config.get("model_max_length")
    return backend, int(limit) if isinstance(limit, int | float) and limit < UNSET_MAX_LENGTH else None


def _tokenizer_from_transformers(pretrained_model: str) -> tuple[Tokenizer, int | None]:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model)
    except (OSError, ValueError) as error:
        offline = (
            " (HF_HUB_OFFLINE is set, so the Hugging Face hub was not asked: give a model folder, or set "
            "HF_HUB_OFFLINE=0 to download it)"
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            else ""
        )
        raise InputError(
            f"--pretrained-model {pretrained_model!r}: cannot load its tokenizer{offline}: {error}"
        ) from error
    if not tokenizer.is_fast:
        raise InputError(f"--pretrained-model {pretrained_model!r} has no fast (tokenizers) tokenizer")
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: leave the wrapper as it was
    limit = tokenizer.model_max_length
    return backend, int(limit) if limit < UNSET_MAX_LENGTH else None


@dataclass(frozen=True)
class Tokenized:
    """Token ids of a batch of texts as one flat array plus row offsets (the layout of an Arrow list)."""

    values: np.ndarray
    offsets: np.ndarray

    def lists(self) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), pa.array(self.values, pa.int32()))

    def ones(self) -> pa.ListArray:
        """The attention mask: unpadded sequences attend to every token."""
        ones = np.ones(self.values.size, dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), pa.array(ones))


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> Tokenized:
    """One batched call for all texts (Rust threads), truncated, special tokens added, not padded; each text
    cut first to what the truncation keeps (:mod:`token_cut`, as the serving handler does: the same ids)."""
    limit = (tokenizer.truncation or {}).get("max_length")
    kept = [token_cut.cut(text, limit) for text in texts] if limit else list(texts)
    ids = [encoding.ids for encoding in tokenizer.encode_batch_fast(kept)]
    whole = [
        i
        for i, text in enumerate(texts)
        if limit and token_cut.must_tokenize_whole(text, kept[i], len(ids[i]), limit)
    ]
    for i, encoding in zip(whole, tokenizer.encode_batch_fast([texts[i] for i in whole]), strict=True):
        ids[i] = encoding.ids
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in ids], out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(offsets[-1]))
    return Tokenized(values, offsets)
