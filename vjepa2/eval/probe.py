"""Attentive probes on frozen features, several heads at once over a learning-rate x weight-decay grid.

As the official recipe (``evals/video_classification_frozen``): each head is an
:class:`~vjepa2.models.AttentiveClassifier` with its own AdamW and a warmup-cosine LR; all heads see the same
batches; the reported result is the best head on the evaluation set (as the official evals report it). Features are
precomputed, so a probe epoch costs only the probe.

Features are ``[N, V, tokens, D]``: ``V`` spatial views of each video (``[N, tokens, D]`` means one view). Training
sees every view as a sample (the official loss per view); evaluation averages the softmax over the views.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from vjepa2.config import ClassifierConfig
from vjepa2.errors import UserError
from vjepa2.models import AttentiveClassifier
from vjepa2.schedules import warmup_cosine_lr

Output = torch.Tensor | list[torch.Tensor]


@dataclass(frozen=True)
class ProbeConfig:
    """Probe architecture and training grid (defaults: the official depth; a small grid for CPU runs)."""

    depth: int = 4  # 3 self-attention blocks + 1 cross-attention block (official)
    num_heads: int = 16  # attention heads (reduced to gcd(num_heads, D) for narrow features)
    epochs: int = 20
    batch_size: int = 64
    lrs: tuple[float, ...] = (1e-3, 3e-4)
    weight_decays: tuple[float, ...] = (0.01, 0.1)
    warmup_epochs: float = 0.0
    start_lr: float = 0.0  # LR at the start of the warmup
    final_lr: float = 0.0  # LR at the end of the cosine
    seed: int = 0
    dtype: str = "fp32"  # "bf16": autocast the probes' forward and backward (about 2x faster on CPU)

    def __post_init__(self) -> None:
        if not self.lrs or not self.weight_decays:
            raise UserError("ProbeConfig needs at least one value in lrs and in weight_decays")
        if self.epochs < 1 or self.batch_size < 1 or self.depth < 1:
            raise UserError(f"ProbeConfig needs epochs, batch_size and depth >= 1, got {self}")
        if self.dtype not in ("fp32", "bf16"):
            raise UserError(f"ProbeConfig.dtype must be 'fp32' or 'bf16', got {self.dtype!r}")

    @property
    def grid(self) -> list[tuple[float, float]]:
        return list(itertools.product(self.lrs, self.weight_decays))


@dataclass
class ProbeResult:
    accuracy: float  # best head's held-out top-1 accuracy (softmax averaged over views)
    head: tuple[float, float]  # its (lr, weight decay)
    accuracies: dict[tuple[float, float], float]
    model: AttentiveClassifier
    top5: float = 0.0  # the best head's top-5 accuracy


def build_probe(dim: int, num_classes: int | tuple[int, ...], cfg: ProbeConfig) -> AttentiveClassifier:
    """An attentive probe over ``dim``-wide tokens; ``num_classes`` a tuple for one query (and head) per task."""
    return AttentiveClassifier(ClassifierConfig(dim, math.gcd(cfg.num_heads, dim), cfg.depth, num_classes=num_classes))


def as_views(feats: torch.Tensor) -> torch.Tensor:
    """``[N, tokens, D]`` -> ``[N, 1, tokens, D]``; ``[N, V, tokens, D]`` unchanged."""
    if feats.ndim == 3:
        return feats.unsqueeze(1)
    if feats.ndim != 4:
        raise UserError(f"probe features must be [N, tokens, D] or [N, views, tokens, D], got {tuple(feats.shape)}")
    return feats


def train_grid(
    build: Callable[[], nn.Module],
    loss_fn: Callable[[Output, torch.Tensor], torch.Tensor],
    feats: torch.Tensor,
    targets: torch.Tensor,
    cfg: ProbeConfig,
    progress: bool = False,
    desc: str = "probe",
) -> list[nn.Module]:
    """Train one ``build()`` probe per ``cfg.grid`` entry on features ``[N, (V,) tokens, D]`` and ``targets [N, ...]``.

    Every head sees the same batches; each view of a video is a training sample. Returns the heads in grid order.
    """
    feats = as_views(feats)
    steps_per_epoch = max(len(feats) // cfg.batch_size, 1)
    gen = torch.Generator().manual_seed(cfg.seed)

    def epoch_batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(feats), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            yield feats[idx], targets[idx]

    return train_grid_stream(build, loss_fn, epoch_batches, steps_per_epoch, cfg, progress, desc)


def train_grid_stream(
    build: Callable[[], nn.Module],
    loss_fn: Callable[[Output, torch.Tensor], torch.Tensor],
    epoch_batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    steps_per_epoch: int,
    cfg: ProbeConfig,
    progress: bool = False,
    desc: str = "probe",
) -> list[nn.Module]:
    """:func:`train_grid` over batches made on the fly: ``epoch_batches(epoch)`` yields ``steps_per_epoch`` pairs
    (features ``[b, (V,) tokens, D]``, targets ``[b, ...]``), e.g. freshly augmented and encoded clips."""
    torch.manual_seed(cfg.seed)
    probes = [build() for _ in cfg.grid]
    opts = [
        torch.optim.AdamW(p.parameters(), lr=lr, weight_decay=wd) for p, (lr, wd) in zip(probes, cfg.grid, strict=True)
    ]
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        losses = []
        for i, (xb, yb) in enumerate(epoch_batches(epoch)):
            xb = as_views(xb)
            x, y = xb.flatten(0, 1).float(), yb.repeat_interleave(xb.shape[1], 0)
            step = min(epoch * steps_per_epoch + i, total - 1)
            for probe, opt, (lr, _) in zip(probes, opts, cfg.grid, strict=True):
                probe.train()
                for group in opt.param_groups:
                    group["lr"] = warmup_cosine_lr(
                        step, warmup=warmup, total=total, start_lr=cfg.start_lr, lr=lr, final_lr=cfg.final_lr
                    )
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
                    out = probe(x)
                loss = loss_fn(_float(out), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses) / max(len(losses), 1):.3f}")
    return probes


def _float(out: Output) -> Output:
    return [o.float() for o in out] if isinstance(out, list) else out.float()


@torch.no_grad()
def predict(model: nn.Module, feats: torch.Tensor, activation: str = "softmax", batch_size: int = 256) -> Output:
    """Scores ``[N, C]`` (a list for a multi-query probe): ``softmax`` or ``sigmoid`` averaged over the views."""
    act = {"softmax": lambda z: z.softmax(-1), "sigmoid": torch.sigmoid}[activation]
    feats = as_views(feats)
    model.eval()
    chunks = []
    for i in range(0, len(feats), batch_size):
        x = feats[i : i + batch_size]
        out = model(x.flatten(0, 1).float())
        outs = out if isinstance(out, list) else [out]
        chunks.append([act(o).unflatten(0, x.shape[:2]).mean(1) for o in outs])
    scores = [torch.cat(parts) for parts in zip(*chunks, strict=True)]
    return scores if isinstance(out, list) else scores[0]


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows of ``scores [N, C]`` whose ``k`` best classes contain the label."""
    top = scores.topk(min(k, scores.shape[-1]), dim=-1).indices
    return (top == labels[:, None]).any(-1).float().mean().item()


def train_probes(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    cfg: ProbeConfig = ProbeConfig(),
    progress: bool = False,
) -> ProbeResult:
    """Train one attentive probe per (lr, wd) on features ``[N, (V,) tokens, D]``; evaluate each on the test set."""
    build = lambda: build_probe(train_feats.shape[-1], num_classes, cfg)  # noqa: E731
    probes = train_grid(build, F.cross_entropy, train_feats, train_labels, cfg, progress, desc="attentive probes")
    return best_probe(probes, test_feats, test_labels, cfg)


def best_probe(probes: list[nn.Module], test_feats: torch.Tensor, test_labels: torch.Tensor, cfg: ProbeConfig):
    """Evaluate trained heads (in ``cfg.grid`` order) on features ``[N, (V,) tokens, D]``; the best by top-1."""
    scores = [predict(p, test_feats) for p in probes]
    accs = {g: topk_accuracy(s, test_labels) for s, g in zip(scores, cfg.grid, strict=True)}
    best = max(accs, key=accs.get)
    i = cfg.grid.index(best)
    return ProbeResult(accs[best], best, accs, probes[i], top5=topk_accuracy(scores[i], test_labels, 5))
