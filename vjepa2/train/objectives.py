"""Pretraining objectives: the V-JEPA latent L1 loss, and a pixel-reconstruction baseline of the same size.

V-JEPA (official ``app/vjepa/train.py``): the EMA teacher encodes the full clip, its features are layer-normed
(no affine) per token and gathered at the target positions; the context encoder sees only the context tokens; the
predictor fills the targets; loss ``mean |z - h|`` per mask config, averaged over configs.

Pixel baseline (MAE-style): the same encoder and predictor, but the predictor regresses the masked tubelets'
pixels (normalised per patch) with a mean squared error; no teacher.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2.models.predictor import gather_tokens
from vjepa2.train.dense import V21Section, distance_weights, level_norm, weighted_l1

MaskPairs = Sequence[tuple[torch.Tensor, torch.Tensor]]


def teacher_targets(target_encoder: nn.Module, clips: torch.Tensor, levels: int = 1) -> torch.Tensor:
    """Layer-normed teacher features of the full clips ``[B, 3, T, H, W]`` -> ``[B, N, D]`` (no grad); with
    ``levels`` > 1 (2.1 deep supervision) the hierarchical levels ``[B, N, levels * D]``, each normed alone."""
    with torch.no_grad():
        if levels > 1:
            return level_norm(target_encoder(clips, hierarchical=True), levels)
        h = target_encoder(clips)
        return F.layer_norm(h, (h.shape[-1],))


def jepa_loss(
    encoder: nn.Module,
    predictor: nn.Module,
    targets: torch.Tensor,
    clips: torch.Tensor,
    masks: MaskPairs,
    token_per_config: bool = False,
) -> torch.Tensor:
    """L1 between predictions and teacher ``targets`` ``[B, N, D]`` at each config's target tokens.

    Args:
        encoder: context encoder (sees only the context tokens).
        predictor: mask-denoising predictor.
        targets: layer-normed teacher features from :func:`teacher_targets`.
        clips: ``[B, 3, T, H, W]``.
        masks: one ``(context [B, Kc], target [B, Kt])`` pair per mask config.
        token_per_config: use mask token ``i`` for config ``i`` (else token 0 for all, as the official V-JEPA 2 code).
    """
    losses = []
    for i, (ctx, tgt) in enumerate(masks):
        z = predictor(encoder(clips, ctx), ctx, tgt, mask_index=i if token_per_config else 0)
        losses.append((z.float() - gather_tokens(targets, tgt).float()).abs().mean())
    return torch.stack(losses).mean()


def patchify(clips: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """``[B, C, T, H, W] -> [B, N, t * p * p * C]`` in the encoder's (t, h, w) token order."""
    B, C, T, H, W = clips.shape
    t, p = tubelet_size, patch_size
    x = clips[:, :, : T - T % t].reshape(B, C, T // t, t, H // p, p, W // p, p)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(B, (T // t) * (H // p) * (W // p), t * p * p * C)


def pixel_targets(clips: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """Per-patch normalised pixels ``[B, N, t * p * p * C]`` (the MAE ``norm_pix_loss`` target)."""
    x = patchify(clips, patch_size, tubelet_size)
    return (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + 1e-6).sqrt()


def pixel_loss(
    encoder: nn.Module,
    predictor: nn.Module,
    targets: torch.Tensor,
    clips: torch.Tensor,
    masks: MaskPairs,
    token_per_config: bool = False,
) -> torch.Tensor:
    """Mean squared error between predicted and true normalised pixels of the masked tubelets."""
    losses = []
    for i, (ctx, tgt) in enumerate(masks):
        z = predictor(encoder(clips, ctx), ctx, tgt, mask_index=i if token_per_config else 0)
        losses.append(F.mse_loss(z.float(), gather_tokens(targets, tgt).float()))
    return torch.stack(losses).mean()


def jepa21_loss(
    encoder: nn.Module,
    predictor: nn.Module,
    targets: torch.Tensor,
    clips: torch.Tensor,
    masks: MaskPairs,
    v21: V21Section,
    context_weight: float,
    grid: tuple[int, int, int],
    image: bool = False,
    token_per_config: bool = False,
) -> torch.Tensor:
    """The V-JEPA 2.1 loss (:mod:`vjepa2.train.dense`): L1 on the target tokens plus ``context_weight`` times the
    (distance-weighted) L1 on the context tokens, on every level with deep supervision; averaged over configs."""
    losses = []
    for i, (ctx, tgt) in enumerate(masks):
        z = encoder(clips, ctx, hierarchical=v21.deep_supervision)
        out = predictor(z, ctx, tgt, mask_index=i if token_per_config else 0, mod="image" if image else "video")
        pred, pred_ctx = out if isinstance(out, tuple) else (out, None)
        loss = weighted_l1(pred, gather_tokens(targets, tgt), None)
        if pred_ctx is not None and context_weight > 0:
            weights = distance_weights(ctx, tgt, grid) if v21.distance_weighting else None
            loss = loss + context_weight * weighted_l1(pred_ctx, gather_tokens(targets, ctx), weights)
        losses.append(loss)
    return torch.stack(losses).mean()


class Student(nn.Module):
    """Context encoder + predictor as one module whose forward returns the loss over all mask configs.

    Several mask configs mean several encoder/predictor passes per step; doing them inside one ``forward`` lets
    DDP/FSDP see a single forward per backward (the role of the official ``MultiSeqWrapper``). With any V-JEPA 2.1
    switch on (``v21``), the loss is :func:`jepa21_loss`.
    """

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module,
        objective: str = "jepa",
        token_per_config: bool = False,
        v21: V21Section | None = None,
    ):
        super().__init__()
        self.encoder, self.predictor = encoder, predictor
        self.objective, self.token_per_config = objective, token_per_config
        self.v21 = v21 or V21Section()

    def forward(
        self,
        clips: torch.Tensor,
        masks: MaskPairs,
        targets: torch.Tensor,
        context_weight: float = 0.0,
        grid: tuple[int, int, int] | None = None,
        image: bool = False,
    ) -> torch.Tensor:
        if self.objective == "pixel":
            return pixel_loss(self.encoder, self.predictor, targets, clips, masks, self.token_per_config)
        if self.v21.enabled:
            return jepa21_loss(
                self.encoder, self.predictor, targets, clips, masks, self.v21, context_weight, grid, image,
                self.token_per_config,
            )  # fmt: skip
        return jepa_loss(self.encoder, self.predictor, targets, clips, masks, self.token_per_config)


def feature_std(targets: torch.Tensor) -> float:
    """Mean over dims of the per-dimension std of features ``[B, N, D]`` across all tokens (collapse -> 0)."""
    return targets.detach().float().flatten(0, 1).std(dim=0).mean().item()
