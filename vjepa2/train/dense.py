"""V-JEPA 2.1 training switches (``app/vjepa_2_1/train.py``): dense context loss, deep supervision, image steps.

All off by default, which is V-JEPA 2. With them on:

- **Deep supervision:** the teacher returns its hierarchical levels concatenated (``[B, N, L * D]``), each level
  layer-normed again without affine; the student's context goes to the predictor as ``L`` levels too, and the
  predictor predicts all ``L`` levels.
- **Dense context loss:** the predictor also returns predictions for the context tokens; they are regressed onto
  the teacher's features at the context positions, each token weighted by ``1 / sqrt(d)``, ``d`` the Euclidean
  distance in (t, h, w) token units to the nearest target token of the same sample. Total loss
  ``L_pred + lambda * L_ctx`` with ``lambda`` 0 before ``context_ramp[0]``, linear to ``context_loss`` at
  ``context_ramp[1]``, constant after (official ``lambda_progressive``; a cooldown uses ``(0, 0)``: constant).
- **Image steps:** every ``image_every``-th step trains on the clips' first frames through the encoder's image
  tokenizer with the image mask config (official: 10 blocks at 0.15) and the predictor's image embedding (the
  official run gives whole ranks to ImageNet; one process alternates steps instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class V21Section:
    """The 2.1 switches of :class:`~vjepa2.train.pretrain.PretrainConfig` (``v21.*`` in YAML)."""

    deep_supervision: bool = False  # targets and predictions on every hierarchical level of the encoder
    context_loss: float = 0.0  # lambda_max of the dense context loss (official 2.1: 0.5); 0 = off
    context_ramp: tuple[int, int] = (15_000, 30_000)  # lambda ramps from 0 to context_loss between these steps
    distance_weighting: bool = True  # 1/sqrt(distance to the nearest target) per context token (off in cooldowns)
    image_every: int = 0  # every k-th step is an image step (first frames, image tokenizer); 0 = never
    image_blocks: int = 10  # the image mask config: blocks at spatial scale 0.15

    @property
    def enabled(self) -> bool:
        return self.deep_supervision or self.context_loss > 0 or self.image_every > 0


def context_weight(v21: V21Section, step: int) -> float:
    """``lambda`` at ``step``: 0 before the ramp, linear during it, ``context_loss`` after."""
    start, end = v21.context_ramp
    if v21.context_loss <= 0 or step < start:
        return 0.0
    if step >= end or end <= start:
        return v21.context_loss
    return v21.context_loss * (step - start) / (end - start)


def level_norm(h: torch.Tensor, levels: int) -> torch.Tensor:
    """Layer-norm each of the ``levels`` concatenated chunks of ``h`` ``[..., levels * D]`` (no affine)."""
    if levels == 1:
        return F.layer_norm(h, (h.shape[-1],))
    chunks = h.unflatten(-1, (levels, -1))
    return F.layer_norm(chunks, (chunks.shape[-1],)).flatten(-2)


def _coords(ids: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    _, H, W = grid
    t, rem = ids // (H * W), ids % (H * W)
    return torch.stack([t, rem // W, rem % W], dim=-1).float()


def distance_weights(ctx: torch.Tensor, tgt: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """``1 / sqrt(d)`` per context token ``[B, Nc]``; ``d``: distance to the nearest target token (token units)."""
    d = torch.cdist(_coords(ctx, grid), _coords(tgt, grid)).amin(dim=-1)  # [B, Nc], >= 1: positions differ
    return d.clamp_min(1.0).rsqrt()


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``mean(|pred - target| * w)`` over every element, ``w`` a per-token weight ``[B, N]`` (official: not
    renormalised by the weights' sum)."""
    err = (pred.float() - target.float()).abs()  # [B, N, C]
    return (err if weights is None else err * weights.unsqueeze(-1)).mean()
