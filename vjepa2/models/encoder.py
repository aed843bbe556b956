"""V-JEPA 2 video ViT encoder (official ``src/models/vision_transformer.py``).

Notable choices, all as in the official code:

- 2x16x16 Conv3d tubelets flattened in (t, h, w) raster order; no absolute position embedding, 3D-RoPE in every
  block with positions from the real input grid (any frame count, resolution or aspect ratio).
- A masked forward gathers the kept tokens *before* the blocks and uses their original indices as RoPE positions,
  so context features never depend on masked-out tokens.
- ``out_layers`` returns the listed intermediate layers, each through the final norm.
- A single image (``[B, 3, H, W]`` or ``T = 1``) runs as a 2-frame clip; odd frame counts are floored by the tubelet.

V-JEPA 2.1 (``app/vjepa_2_1/models/vision_transformer.py``), switched on by the config: single-frame inputs go
through their own 1-frame patch embedding (``patch_embed_img``) with T = 1 RoPE positions; a learned image or
video embedding is added to every token before masking; row and column RoPE positions are rescaled to the
pre-training grid (``rope_grid``); per-layer norms (``norms_block``) at the hierarchical layers replace the final
norm: the default output is the last one, ``out_layers`` use each layer's own norm, and ``hierarchical=True``
concatenates the normed levels (``[B, N, levels * D]``, the input of the 4-level predictors).
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


def rescaled_positions(h: torch.Tensor, w: torch.Tensor, grid_hw: tuple[int, int], target: int):
    """V-JEPA 2.1 ``interpolate_rope``: rows and columns of an ``H_p x W_p`` grid mapped onto ``[0, target - 1]``."""
    h_p, w_p = grid_hw
    if h_p < 2 or w_p < 2:
        raise ValueError(
            f"a {h_p}x{w_p} patch grid cannot be rescaled to the {target}x{target} pre-training grid (0/0): "
            "V-JEPA 2.1 encoders need inputs of at least 2 patches per side"
        )
    return h * ((target - 1) / (h_p - 1)), w * ((target - 1) / (w_p - 1))


class VisionTransformer(nn.Module):
    """Video ViT: ``video [B, 3, T, H, W]`` (and optional kept-token indices ``[B, K]``) -> features ``[B, K|N, D]``."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed3D(cfg.in_chans, d, cfg.patch_size, cfg.tubelet_size)
        if cfg.image_tokenizer:
            self.patch_embed_img = PatchEmbed3D(cfg.in_chans, d, cfg.patch_size, 1)
        if cfg.modality_embedding:
            self.img_mod_embed = nn.Parameter(torch.zeros(1, 1, d))
            self.video_mod_embed = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth)
        )
        if cfg.hierarchical_layers:
            self.norms_block = nn.ModuleList(nn.LayerNorm(d, eps=cfg.norm_eps) for _ in cfg.hierarchical_layers)
        else:
            self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.rope = RoPE3D(cfg.head_dim, cfg.rope_layout, cfg.rope_base)
        self.grad_checkpointing = False
        self.apply(init_weights)
        rescale_blocks(self.blocks)
        if cfg.modality_embedding:
            nn.init.normal_(self.img_mod_embed, std=1e-6)
            nn.init.normal_(self.video_mod_embed, std=1e-6)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def prepare(self, video: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``(clip [B, C, T, H, W], is_image)``: single frames take the image path of 2.1 encoders, else run as
        clips of ``tubelet_size`` repeated frames."""
        if self.cfg.image_tokenizer:
            video = video.unsqueeze(2) if video.ndim == 4 else video
            if video.ndim == 5 and video.shape[2] == 1:
                return video, True
        return as_clip(video, self.cfg.tubelet_size), False

    def grid(self, video: torch.Tensor) -> tuple[int, int, int]:
        """Token grid ``(T/t, H/p, W/p)`` of a clip ``[B, C, T, H, W]`` (``T = 1`` on the image path)."""
        video, image = self.prepare(video)
        _, _, T, H, W = video.shape
        p, t = self.cfg.patch_size, 1 if image else self.cfg.tubelet_size
        return T // t, H // p, W // p

    def _norm(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """The output norm of block ``layer``: its own (2.1 hierarchical layers) or the final norm."""
        if not self.cfg.hierarchical_layers:
            return self.norm(x)
        if layer not in self.cfg.hierarchical_layers:
            raise ValueError(
                f"layer {layer} has no norm; this encoder's levels are {list(self.cfg.hierarchical_layers)}"
            )
        return self.norms_block[self.cfg.hierarchical_layers.index(layer)](x)

    def forward(
        self,
        video: torch.Tensor,
        masks: torch.Tensor | None = None,
        out_layers: Sequence[int] | None = None,
        hierarchical: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Encode a normalised clip.

        Args:
            video: ``[B, 3, T, H, W]`` (or images ``[B, 3, H, W]``), ImageNet-normalised.
            masks: optional LongTensor ``[B, K]`` of kept token indices into the (t, h, w) raster.
            out_layers: optional block indices whose normed outputs are returned as a list.
            hierarchical: (2.1) return the normed outputs of every hierarchical layer concatenated on features.

        Returns:
            ``[B, N, D]`` (``[B, K, D]`` with masks), a list of those for ``out_layers``, or ``[B, N, levels * D]``.
        """
        video, image = self.prepare(video)
        _, h_p, w_p = self.grid(video)
        x = (self.patch_embed_img if image else self.patch_embed)(video)  # [B, N, D]
        if self.cfg.modality_embedding:
            x = x + (self.img_mod_embed if image else self.video_mod_embed)
        if masks is None:
            ids = torch.arange(x.shape[1], device=x.device)
        else:
            ids = check_indices(masks.to(x.device), x.shape[1], "masks")
            x = torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        t, h, w = grid_positions(ids, (h_p, w_p))
        if self.cfg.rope_grid is not None:
            h, w = rescaled_positions(h, w, (h_p, w_p), self.cfg.rope_grid)
        cos, sin = self.rope(t, h, w, dtype=compute_dtype(x))
        rope = (cos.unsqueeze(-3), sin.unsqueeze(-3))  # broadcast over heads
        if hierarchical:
            if not self.cfg.hierarchical_layers:
                raise ValueError("hierarchical=True needs an encoder with hierarchical_layers (V-JEPA 2.1)")
            return torch.cat(self._layers(x, rope, self.cfg.hierarchical_layers), dim=-1)
        if out_layers is None:
            last = len(self.blocks) - 1
            return self._norm(run_blocks(self.blocks, x, rope, checkpointing=self.grad_checkpointing), last)
        bad = [i for i in out_layers if not 0 <= i < len(self.blocks)]
        if bad:
            raise ValueError(f"out_layers {bad} outside the encoder's {len(self.blocks)} blocks")
        return self._layers(x, rope, out_layers)

    def _layers(self, x: torch.Tensor, rope, layers: Sequence[int]) -> list[torch.Tensor]:
        """The normed outputs of blocks ``layers`` (in the order given), running only as deep as needed."""
        levels = self.cfg.hierarchical_layers
        if levels and not set(layers) <= set(levels):
            raise ValueError(
                f"out_layers {sorted(set(layers) - set(levels))} have no norm; the levels are {list(levels)}"
            )
        outs: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks[: max(layers) + 1]):
            x = run_blocks([blk], x, rope, checkpointing=self.grad_checkpointing)
            if i in layers:
                outs[i] = self._norm(x, i)
        return [outs[i] for i in layers]
