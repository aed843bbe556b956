"""V-JEPA 2 video ViT encoder (official ``src/models/vision_transformer.py``).

Notable choices, all as in the official code:

- 2x16x16 Conv3d tubelets flattened in (t, h, w) raster order; no absolute position embedding, 3D-RoPE in every
  block with positions from the real input grid (any frame count, resolution or aspect ratio).
- A masked forward gathers the kept tokens *before* the blocks and uses their original indices as RoPE positions,
  so context features never depend on masked-out tokens.
- ``out_layers`` returns the listed intermediate layers, each through the final norm.
- A single image (``[B, 3, H, W]`` or ``T = 1``) runs as a 2-frame clip; odd frame counts are floored by the tubelet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2.config import EncoderConfig
from vjepa2.nn import Block, RoPE3D, compute_dtype, grid_positions, run_blocks
from vjepa2.nn.init import init_weights, rescale_blocks


class PatchEmbed3D(nn.Module):
    """``[B, C, T, H, W] -> [B, T/t * H/p * W/p, D]`` with a Conv3d of kernel = stride = (t, p, p)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, tubelet_size: int) -> None:
        super().__init__()
        size = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=size, stride=size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and compute_dtype(x) == torch.bfloat16:
            return self._as_matmul(x)
        return self.proj(x).flatten(2).transpose(1, 2)

    def _as_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """The same map as one Linear over flattened tubelets (CPU bf16 Conv3d is ~6x slower than the matmul)."""
        B, C, T, H, W = x.shape
        t, p, q = self.proj.kernel_size
        x = x[:, :, : T - T % t, : H - H % p, : W - W % q]  # Conv3d drops partial tubelets
        x = x.unflatten(4, (W // q, q)).unflatten(3, (H // p, p)).unflatten(2, (T // t, t))  # [B,C,T',t,H',p,W',q]
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4).flatten(1, 3)  # [B, N, C*t*p*q] in (t, h, w) raster
        return F.linear(x, self.proj.weight.flatten(1), self.proj.bias)


def as_clip(video: torch.Tensor, tubelet_size: int) -> torch.Tensor:
    """Validate ``video`` and return it as ``[B, C, T >= tubelet, H, W]`` (images and single frames repeated)."""
    if video.ndim == 4:
        video = video.unsqueeze(2)
    if video.ndim != 5:
        raise ValueError(f"expected video [B, C, T, H, W] or images [B, C, H, W], got shape {tuple(video.shape)}")
    if video.shape[2] < tubelet_size:
        video = video.repeat(1, 1, tubelet_size, 1, 1)[:, :, :tubelet_size]
    return video


def check_indices(ids: torch.Tensor, n: int | None, name: str) -> torch.Tensor:
    """Validate a LongTensor ``[B, K]`` of token indices (into a grid of ``n`` tokens when ``n`` is given)."""
    if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name} must be an integer tensor [B, K] of token indices, got {ids.dtype} {list(ids.shape)}")
    if n is not None and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise ValueError(f"{name} holds indices in [{int(ids.min())}, {int(ids.max())}] outside the {n}-token grid")
    return ids.long()


class VisionTransformer(nn.Module):
    """Video ViT: ``video [B, 3, T, H, W]`` (and optional kept-token indices ``[B, K]``) -> features ``[B, K|N, D]``."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed3D(cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.tubelet_size)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.rope = RoPE3D(cfg.head_dim, cfg.rope_layout, cfg.rope_base)
        self.grad_checkpointing = False
        self.apply(init_weights)
        rescale_blocks(self.blocks)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def grid(self, video: torch.Tensor) -> tuple[int, int, int]:
        """Token grid ``(T/t, H/p, W/p)`` of a clip ``[B, C, T, H, W]``."""
        _, _, T, H, W = video.shape
        p, t = self.cfg.patch_size, self.cfg.tubelet_size
        return T // t, H // p, W // p

    def forward(
        self,
        video: torch.Tensor,
        masks: torch.Tensor | None = None,
        out_layers: Sequence[int] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Encode a normalised clip.

        Args:
            video: ``[B, 3, T, H, W]`` (or images ``[B, 3, H, W]``), ImageNet-normalised.
            masks: optional LongTensor ``[B, K]`` of kept token indices into the (t, h, w) raster.
            out_layers: optional block indices whose (final-normed) outputs are returned as a list.

        Returns:
            ``[B, N, D]`` (``[B, K, D]`` with masks), or a list of those for ``out_layers``.
        """
        video = as_clip(video, self.cfg.tubelet_size)
        _, h_p, w_p = self.grid(video)
        x = self.patch_embed(video)  # [B, N, D]
        if masks is None:
            ids = torch.arange(x.shape[1], device=x.device)
        else:
            ids = check_indices(masks.to(x.device), x.shape[1], "masks")
            x = torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        cos, sin = self.rope(*grid_positions(ids, (h_p, w_p)), dtype=compute_dtype(x))
        rope = (cos.unsqueeze(-3), sin.unsqueeze(-3))  # broadcast over heads
        if out_layers is None:
            return self.norm(run_blocks(self.blocks, x, rope, checkpointing=self.grad_checkpointing))
        bad = [i for i in out_layers if not 0 <= i < len(self.blocks)]
        if bad:
            raise ValueError(f"out_layers {bad} outside the encoder's {len(self.blocks)} blocks")
        wanted, outs = set(out_layers), []
        for i, blk in enumerate(self.blocks):
            x = run_blocks([blk], x, rope, checkpointing=self.grad_checkpointing)
            if i in wanted:
                outs.append(self.norm(x))
        return outs
