"""Schedules of the official recipe as pure functions of the step.

- LR: linear warmup ``start_lr -> lr`` then a cosine ``lr -> final_lr`` over ``T_max = ipe_scale * total``
  (official ``WarmupCosineSchedule``; ``final_lr == lr`` gives the V-JEPA 2 warmup-constant schedule), and the
  cooldown's linear decay ``lr -> final_lr`` over ``ipe_scale * total`` steps (``LinearDecaySchedule``).
- Weight decay: cosine ``wd -> final_wd`` (``CosineWDSchedule``; constant 0.04 in every V-JEPA 2 config).
- EMA momentum: linear ``start -> end`` over ``ipe_scale * total`` steps (constant 0.99925 in V-JEPA 2).
"""

from __future__ import annotations

import math


def warmup_cosine_lr(
    step: int, *, warmup: int, total: int, start_lr: float, lr: float, final_lr: float, ipe_scale: float = 1.0
) -> float:
    """Learning rate at ``step`` (0-based) for a warmup then a cosine to ``final_lr``."""
    if step < warmup:
        return start_lr + (step + 1) / max(warmup, 1) * (lr - start_lr)
    t_max = max(ipe_scale * total - warmup, 1)
    progress = min((step - warmup) / t_max, 1.0)
    return final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_decay_lr(step: int, *, total: int, lr: float, final_lr: float, ipe_scale: float = 1.0) -> float:
    """Cooldown learning rate: linear from ``lr`` to ``final_lr`` over ``ipe_scale * total`` steps, no warmup."""
    progress = min(step / max(ipe_scale * total, 1), 1.0)
    return lr + (final_lr - lr) * progress


def cosine_wd(step: int, *, total: int, wd: float, final_wd: float, ipe_scale: float = 1.0) -> float:
    """Weight decay at ``step``: cosine from ``wd`` to ``final_wd``."""
    progress = min(step / max(ipe_scale * total, 1), 1.0)
    return final_wd + (wd - final_wd) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_momentum(step: int, *, total: int, start: float, end: float, ipe_scale: float = 1.0) -> float:
    """EMA momentum at ``step``: linear ramp from ``start`` to ``end`` (constant when they are equal)."""
    progress = min(step / max(ipe_scale * total, 1), 1.0)
    return start + (end - start) * progress


def wsd_lr(step: int, *, warmup: int, anneal: int, total: int, start_lr: float, lr: float, final_lr: float) -> float:
    """Warmup-stable-decay (official ``WSDSchedule``): linear warmup, constant, then a linear anneal to ``final_lr``."""
    if step < warmup:
        return start_lr + (step + 1) / max(warmup, 1) * (lr - start_lr)
    decay_start = total - anneal
    if step < decay_start:
        return lr
    return lr + (final_lr - lr) * min((step - decay_start + 1) / max(anneal, 1), 1.0)
