"""Cheap probe baselines on mean-pooled features: a linear classifier and a k-nearest-neighbour vote.

Both pool the tokens (and views) of each video to one vector ``[D]``: they show how much a task needs the
attentive probe's token-level reading. The linear probe standardises the features, trains a softmax classifier
full-batch with AdamW over a small weight-decay grid and reports the best; the k-NN probe votes with the cosine
similarities of the ``k`` nearest training videos, weighted by ``exp(sim / temperature)`` (as DINO's k-NN eval).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vjepa2.eval.probe import as_views, topk_accuracy


@dataclass(frozen=True)
class BaselineConfig:
    """The linear probe's grid and steps, and the k-NN vote (``knn_k = 0`` turns it off)."""

    linear: bool = True
    linear_lr: float = 1e-2
    linear_steps: int = 300
    linear_weight_decays: tuple[float, ...] = (1e-4, 1e-2, 1e-1)
    knn_k: int = 20
    knn_temperature: float = 0.07


def pool(feats: torch.Tensor) -> torch.Tensor:
    """Features ``[N, (V,) tokens, D]`` -> one vector per video ``[N, D]`` (mean over views and tokens, float32)."""
    return as_views(feats).float().mean(dim=(1, 2))


def linear_probe(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    cfg: BaselineConfig = BaselineConfig(),
) -> tuple[float, float]:
    """Best top-1 accuracy over the weight-decay grid of a linear softmax classifier on pooled features ``[N, D]``.

    Returns:
        ``(accuracy, weight decay)`` of the best classifier on the test set.
    """
    mean, std = train.mean(0), train.std(0) + 1e-6
    x, x_test = (train - mean) / std, (test - mean) / std
    best = (-1.0, 0.0)
    for wd in cfg.linear_weight_decays:
        torch.manual_seed(0)
        head = torch.nn.Linear(x.shape[1], num_classes)
        opt = torch.optim.AdamW(head.parameters(), lr=cfg.linear_lr, weight_decay=wd)
        for _ in range(cfg.linear_steps):
            loss = F.cross_entropy(head(x), train_labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            best = max(best, (topk_accuracy(head(x_test), test_labels), wd))
    return best


def knn_probe(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Top-1 accuracy of a weighted k-NN vote with cosine similarity on pooled features ``[N, D]``."""
    a, b = F.normalize(train, dim=-1), F.normalize(test, dim=-1)
    sims, idx = (b @ a.T).topk(min(k, len(a)), dim=-1)  # [M, k]
    votes = torch.zeros(len(b), num_classes).scatter_add_(1, train_labels[idx], (sims / temperature).exp())
    return topk_accuracy(votes, test_labels)
