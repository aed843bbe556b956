"""Frozen-encoder features as the world model sees them: each frame on its own, layer-normed (``normalize_reps``).

Used by stage-2 training (feature caches) and by planning alike, so both read the same features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vjepa2.models.encoder import VisionTransformer

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}  # autocast dtype by name


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free LayerNorm over the last dim, in float32 (``normalize_reps``)."""
    return F.layer_norm(x.float(), (x.shape[-1],))


@torch.inference_mode()
def encode_frames(encoder: VisionTransformer, frames: torch.Tensor, dtype: str = "bf16") -> torch.Tensor:
    """Encode frames one at a time, each as a duplicated 2-frame tubelet (official per-frame encoding).

    Args:
        encoder: the frozen video encoder.
        frames: normalised images ``[B, 3, H, W]`` or clips ``[B, 3, T, H, W]``.
        dtype: autocast dtype name (see ``DTYPES``).

    Returns:
        Layer-normed features ``[B, T, HW, D]`` (``T = 1`` for images), float32.
    """
    if frames.ndim == 4:
        frames = frames.unsqueeze(2)
    if frames.ndim != 5:
        raise ValueError(f"expected frames [B, 3, H, W] or [B, 3, T, H, W], got {tuple(frames.shape)}")
    B, C, T, H, W = frames.shape
    flat = frames.transpose(1, 2).reshape(B * T, C, 1, H, W)
    clip = flat.expand(-1, -1, encoder.cfg.tubelet_size, -1, -1)  # duplicated tubelet
    cast = DTYPES[dtype]
    with torch.autocast(frames.device.type, dtype=cast or torch.float32, enabled=cast is not None):
        h = encoder(clip)  # [B*T, HW, D]
    return layer_norm(h).view(B, T, h.shape[1], h.shape[2])
