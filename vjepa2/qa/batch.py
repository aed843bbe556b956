"""Questions as token batches: ``<bos> prompt answer <eos>``, right-padded, with labels on the answer only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vjepa2.qa.synthetic import QAItem


@dataclass
class TextBatch:
    """``ids``, ``mask``, ``labels``: ``[B, L]``; ``labels`` is -100 except on the answer and its eos."""

    ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """``<bos>`` (when the tokenizer has one) and the prompt's ids."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + encode(tokenizer, prompt)


def _pad(rows: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def collate(tokenizer: Any, prompts: Sequence[str], answers: Sequence[str | None]) -> TextBatch:
    """Right-padded token batch; an answer of None leaves the prompt alone (for generation)."""
    rows, labels = [], []
    for prompt, answer in zip(prompts, answers, strict=True):
        p = prompt_ids(tokenizer, prompt)
        a = [] if answer is None else encode(tokenizer, answer) + [tokenizer.eos_token_id]
        rows.append(p + a)
        labels.append([-100] * len(p) + a)
    ids = _pad(rows, tokenizer.pad_token_id)
    mask = _pad([[1] * len(r) for r in rows], 0)
    return TextBatch(ids, mask, _pad(labels, -100))


def item_batch(tokenizer: Any, items: Sequence[QAItem], with_answers: bool = True) -> TextBatch:
    """The batch of QA items (answers as targets, or prompts only)."""
    return collate(tokenizer, [i.prompt for i in items], [i.answer if with_answers else None for i in items])


def option_batch(tokenizer: Any, items: Sequence[QAItem]) -> tuple[TextBatch, list[int]]:
    """One row per (item, option) with that option as the answer, and each row's item index."""
    prompts, answers, owner = [], [], []
    for k, item in enumerate(items):
        for option in item.options:
            prompts.append(item.prompt)
            answers.append(option)
            owner.append(k)
    return collate(tokenizer, prompts, answers), owner
