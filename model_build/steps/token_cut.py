"""Cut a text to what a tokenizer that truncates at ``max_tokens`` can keep, before tokenizing it.

A tokenizer that truncates still reads the whole text first: a 90,000-character review costs as much to tokenize
as 700 reviews of the model's 128 tokens, for the same 128 ids. The processing step and the serving handler
both cut each text first, here, and get the same ids as from the whole text:

- :func:`cut` keeps the text up to the last whitespace before ``max_tokens * CHARS_PER_TOKEN`` characters, so the
  kept text ends on a whole word. The tokenizers we use (WordPiece, byte-level BPE, SentencePiece) split on
  whitespace before they split words into tokens, so the tokens of the kept text are the first tokens of the
  whole text.
- When the kept text gives fewer than ``max_tokens`` ids, those are not all of the whole text's first
  ``max_tokens`` (whitespace or long unknown words used up the characters): :func:`must_tokenize_whole` says to
  tokenize the whole text instead. So the cut changes the cost, never the ids (tests compare them).

Pure standard library: the processing step imports it as a sibling module, and the serving handler imports it
from ``model.tar.gz/code/`` (``model_deploy/serving/token_cut.py`` is a link to this file, and training copies
that folder's ``*.py`` into ``code/``).
"""

from __future__ import annotations

CHARS_PER_TOKEN = 10
"""Characters kept per token of the limit: English text averages 4-5 characters a token (spaces included), so
1,280 characters for 128 tokens leave room, and a text that needs more is tokenized whole."""

_WHITESPACE = " \t\n\r"
"""Where a text may be cut: characters every tokenizer we use splits on (not Unicode's rarer spaces)."""


def cut(text: str, max_tokens: int) -> str:
    """``text`` itself when it is short enough, else its start up to the last whitespace within the budget;
    a text with no whitespace there (one long word) is kept whole: a cut inside a word changes its tokens."""
    budget = max_tokens * CHARS_PER_TOKEN
    if len(text) <= budget:
        return text
    end = max(text.rfind(space, 0, budget + 1) for space in _WHITESPACE)
    kept = text[:end].rstrip(_WHITESPACE) if end > 0 else ""
    return kept or text


def must_tokenize_whole(text: str, kept: str, token_count: int, max_tokens: int) -> bool:
    """True when ``kept`` (from :func:`cut`) gave ``token_count`` ids, too few to be the first ``max_tokens``
    of ``text``: only then can the whole text give other ids."""
    return len(kept) < len(text) and token_count < max_tokens
