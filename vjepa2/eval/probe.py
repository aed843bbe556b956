"""Attentive probes on frozen features, several heads at once over a learning-rate x weight-decay grid.

As the official recipe (``evals/video_classification_frozen``): each head is an
:class:`~vjepa2.models.AttentiveClassifier` with its own AdamW and a warmup-cosine LR; all heads see the same
batches; the reported result is the best head. Features are precomputed, so a probe epoch costs only the probe.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2.config import ClassifierConfig
from vjepa2.models import AttentiveClassifier


@dataclass(frozen=True)
class ProbeConfig:
    """Probe architecture and training grid."""

    depth: int = 4  # 3 self-attention blocks + 1 cross-attention block (official)
    num_heads: int = 16
    epochs: int = 20
    batch_size: int = 64
    lrs: tuple[float, ...] = (1e-3, 3e-4)
    weight_decays: tuple[float, ...] = (0.01, 0.1)
    warmup_epochs: float = 0.0
    seed: int = 0


@dataclass
class ProbeResult:
    accuracy: float  # best head's held-out top-1 accuracy
    head: tuple[float, float]  # its (lr, weight decay)
    accuracies: dict[tuple[float, float], float]
    model: AttentiveClassifier


def _lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1.0 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


@torch.no_grad()
def accuracy(model: nn.Module, feats: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on features ``[N, tokens, D]``."""
    model.eval()
    correct = sum(
        (model(feats[i : i + batch_size]).argmax(-1) == labels[i : i + batch_size]).sum().item()
        for i in range(0, len(feats), batch_size)
    )
    return correct / len(feats)


def train_probes(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    cfg: ProbeConfig = ProbeConfig(),
) -> ProbeResult:
    """Train one attentive probe per (lr, wd) on features ``[N, tokens, D]``; evaluate each on the test features."""
    torch.manual_seed(cfg.seed)
    dim = train_feats.shape[-1]
    heads = math.gcd(cfg.num_heads, dim)
    grid = list(itertools.product(cfg.lrs, cfg.weight_decays))
    probes = [AttentiveClassifier(ClassifierConfig(dim, heads, cfg.depth, num_classes=num_classes)) for _ in grid]
    opts = [torch.optim.AdamW(p.parameters(), lr=lr, weight_decay=wd) for p, (lr, wd) in zip(probes, grid, strict=True)]
    steps_per_epoch = max(len(train_feats) // cfg.batch_size, 1)
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(len(train_feats), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x, y = train_feats[idx], train_labels[idx]
            for probe, opt, (lr, _) in zip(probes, opts, grid, strict=True):
                probe.train()
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, total, warmup, lr)
                loss = F.cross_entropy(probe(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            step += 1
    accs = {g: accuracy(p, test_feats, test_labels) for p, g in zip(probes, grid, strict=True)}
    best = max(accs, key=accs.get)
    return ProbeResult(accs[best], best, accs, probes[grid.index(best)])
