"""A tiny, randomly initialised RoBERTa built offline, for tests of the RoBERTa code paths.

``roberta-base`` cannot be downloaded here, so tests train a byte-level BPE tokenizer on the sample reviews with
``tokenizers`` and pair it with a 2-layer ``RobertaConfig``: the same classes, special tokens and padding rules as
``roberta-base``, small enough to train in seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import ByteLevelBPETokenizer

TINY_ROBERTA_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 514,  # roberta-base's value: positions start after the padding index
}
INIT_SEED = 0
"""Seed of the random weights: every build of the tiny model starts from the same ones."""


def build_tiny_roberta(folder: Path, texts: Iterable[str], vocab_size: int = 2000) -> Path:
    """Write a tokenizer and a random 3-class ``RobertaForSequenceClassification`` into ``folder``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        (text for text in texts if text),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    # transformers 5 builds the tokenizer from the vocabulary and merges themselves, not from their files.
    tokenizer = RobertaTokenizer(
        vocab=bpe.get_vocab(),
        merges=[tuple(merge.split(" ")) for merge in _merges(bpe)],
        model_max_length=512,
    )
    tokenizer.save_pretrained(folder)

    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        num_labels=3,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **TINY_ROBERTA_CONFIG,
    )
    # Seeded, so the weights do not depend on what else the test session drew from torch's RNG before: the
    # tests that train this model (the collapse of an unweighted loss, for one) see the same start every run.
    with torch.random.fork_rng():
        torch.manual_seed(INIT_SEED)
        RobertaForSequenceClassification(config).save_pretrained(folder)
    return folder


def _merges(bpe: ByteLevelBPETokenizer) -> list[str]:
    """The trained BPE merges in priority order, as ``"left right"`` strings."""
    import json

    model = json.loads(bpe.to_str())["model"]
    return [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]
