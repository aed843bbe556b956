"""A small word-level tokenizer for language models initialised from a config (no pretrained tokenizer offline).

Built with the ``tokenizers`` library (a ``WordLevel`` model, lower-casing, split on whitespace and punctuation)
and wrapped in ``transformers.PreTrainedTokenizerFast``, so it saves and loads like any Hugging Face tokenizer::

    tok = build_tokenizer(vocabulary())
    tok.save_pretrained("run/tokenizer")
    tok = load_tokenizer("run/tokenizer")            # or AutoTokenizer.from_pretrained("run/tokenizer")

No special tokens are added by ``encode``; the batch code places ``<bos>`` and ``<eos>`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vjepa2.errors import UserError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:  # an optional dependency of the package (the `test` extra installs it)
        raise UserError("video QA needs the `transformers` package: pip install 'vjepa2[qa]'") from err
    return transformers


def build_tokenizer(words: Iterable[str]) -> Any:
    """A ``PreTrainedTokenizerFast`` over the special tokens (ids 0-3: pad, unk, bos, eos) then ``words``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    transformers = _transformers()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word.lower(), len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # words and punctuation runs: "moves?" -> "moves", "?"
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS
    )


def load_tokenizer(name_or_folder: str | Path) -> Any:
    """Any tokenizer ``AutoTokenizer`` loads (a saved folder or a hub name); needs bos/eos, gets a pad token."""
    transformers = _transformers()
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(name_or_folder))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load a tokenizer from {name_or_folder}: {err}") from err
    if tok.eos_token_id is None:
        raise UserError(f"the tokenizer of {name_or_folder} has no eos token; video QA needs one to end answers")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def normalise_answer(text: str) -> str:
    """Lower case, single spaces, no trailing punctuation: the form exact-match compares."""
    return " ".join(text.lower().replace("?", " ").replace(".", " ").split())
