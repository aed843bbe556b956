"""Accuracy on a QA set: multiple choice by option log-likelihood, short answer by greedy generation + exact match.

A multiple-choice item is answered with the option whose tokens (and eos) have the highest summed log-probability
after the prompt; an open item with the greedy answer, compared with the true one after normalisation (lower
case, single spaces). Results are counted per question type and format. :func:`chance` gives the expected
accuracy of a uniform guess among the options (mc) or among the type's answers (open).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vjepa2.qa.batch import item_batch, option_batch
from vjepa2.qa.model import VideoQAModel
from vjepa2.qa.run import Features, LoadedRun, features_for, load_run, qa_set
from vjepa2.qa.synthetic import QASet, answer_set
from vjepa2.qa.tokenizer import normalise_answer


@dataclass
class Scores:
    """Correct answers (or expected correct, for chance) and totals per ``(type, format)``."""

    correct: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    total: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, qtype: str, fmt: str, correct: float) -> None:
        self.correct[(qtype, fmt)] += correct
        self.total[(qtype, fmt)] += 1

    def accuracy(self, qtype: str | None = None, fmt: str | None = None) -> float:
        """Accuracy in % over the items matching ``qtype`` and ``fmt`` (None: all)."""
        keys = [k for k in self.total if (qtype in (None, k[0])) and (fmt in (None, k[1]))]
        n = sum(self.total[k] for k in keys)
        return 100.0 * sum(self.correct[k] for k in keys) / n if n else float("nan")

    def to_dict(self) -> dict[str, Any]:
        types = sorted({k[0] for k in self.total})
        fmts = sorted({k[1] for k in self.total})
        return {
            "overall": self.accuracy(),
            "by_format": {f: self.accuracy(fmt=f) for f in fmts},
            "by_type": {t: {"all": self.accuracy(t), **{f: self.accuracy(t, f) for f in fmts}} for t in types},
            "counts": {f"{t}/{f}": n for (t, f), n in sorted(self.total.items())},
        }


def _autocast(dtype: str) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")


@torch.no_grad()
def evaluate(
    model: VideoQAModel,
    tokenizer: Any,
    qa: QASet,
    feats: Features | None,
    dtype: str = "bf16",
    batch_size: int = 64,
    max_new: int = 8,
) -> Scores:
    """Score every item of ``qa``: mc by option log-likelihood, open by greedy generation + exact match."""
    model.eval()
    scores = Scores()
    mc = [i for i in qa.items if i.format == "mc"]
    open_items = [i for i in qa.items if i.format == "open"]
    for start in range(0, len(mc), batch_size):
        chunk = mc[start : start + batch_size]
        text, owner = option_batch(tokenizer, chunk)
        video = feats.of([chunk[k].seed for k in owner]) if model.video else None
        with _autocast(dtype):
            _, logp = model(video, text.ids, text.mask, text.labels)  # [rows]
        best: dict[int, tuple[float, int]] = {}
        for row, k in enumerate(owner):
            if k not in best or logp[row] > best[k][0]:
                best[k] = (float(logp[row]), row)
        for k, item in enumerate(chunk):
            picked = item.options[best[k][1] - owner.index(k)]
            scores.add(item.qtype, "mc", float(picked == item.answer))
    for start in range(0, len(open_items), batch_size):
        chunk = open_items[start : start + batch_size]
        text = item_batch(tokenizer, chunk, with_answers=False)
        video = feats.of([i.seed for i in chunk]) if model.video else None
        with _autocast(dtype):
            answers = model.generate(video, text.ids, text.mask, tokenizer.eos_token_id, max_new)
        for item, ids in zip(chunk, answers, strict=True):
            said = normalise_answer(tokenizer.decode(ids, skip_special_tokens=True))
            scores.add(item.qtype, "open", float(said == normalise_answer(item.answer)))
    return scores


def chance(qa: QASet) -> Scores:
    """Expected accuracy of a uniform guess: 1 / options (mc), 1 / the type's answers (open)."""
    scores = Scores()
    for item in qa.items:
        if item.format == "mc":
            scores.add(item.qtype, "mc", 1.0 / len(item.options))
        else:
            scores.add(item.qtype, "open", 1.0 / len(answer_set(item.qtype, qa.world)))
    return scores


def evaluate_run(
    run: str | Path | LoadedRun, split: str = "test", clips: int | None = None, batch_size: int = 64
) -> tuple[Scores, QASet]:
    """Load a run folder (or use a loaded run) and score it on ``split``'s questions."""
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    qa = qa_set(loaded.cfg, split, clips)
    feats = features_for(loaded.cfg, loaded.encoder, qa) if loaded.encoder is not None else None
    return evaluate(loaded.model, loaded.tokenizer, qa, feats, loaded.cfg.dtype, batch_size), qa


def table(columns: dict[str, Scores], qa: QASet) -> str:
    """A markdown table: one row per question type and format, then per format and overall; one column per model."""
    names = list(columns)
    types = list(dict.fromkeys(i.qtype for i in qa.items))
    fmts = list(dict.fromkeys(i.format for i in qa.items))
    lines = ["| question type | format | n | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    first = next(iter(columns.values()))

    def row(label: str, fmt: str, qtype: str | None, f: str | None) -> str:
        n = sum(v for k, v in first.total.items() if qtype in (None, k[0]) and f in (None, k[1]))
        cells = [f"{s.accuracy(qtype, f):.1f}" for s in columns.values()]
        return f"| {label} | {fmt} | {n} | " + " | ".join(cells) + " |"

    for t in types:
        for f in fmts:
            lines.append(row(t, f, t, f))
    for f in fmts:
        lines.append(row("**all types**", f, None, f))
    lines.append(row("**overall**", "all", None, None))
    return "\n".join(lines)


def save_scores(path: str | Path, scores: Scores, extra: dict[str, Any] | None = None) -> None:
    import json

    Path(path).write_text(json.dumps({**(extra or {}), **scores.to_dict()}, indent=1))
