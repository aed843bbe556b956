"""V-JEPA 2 mask-denoising predictor (official ``src/models/predictor.py``).

Context features are embedded to the predictor width, one learned mask token (zero-initialised) fills every
target position, all tokens are sorted by their original (t, h, w) index, run through the blocks with 3D-RoPE at
those positions, normed, unsorted, and the target tokens are projected back to the encoder width.
Target positions are decoded on the square grid ``img_size / patch_size`` of the config unless ``grid_hw`` is given.

V-JEPA 2.1 (``app/vjepa_2_1/models/predictor.py``), switched on by the config: the input may be several encoder
levels concatenated (``levels`` > 1: Linear(L*D -> D), GELU, Linear(D -> P)); a learned image or video embedding
is added to every token after sorting (``mod``); and ``return_context`` also projects the context tokens
(``predictor_proj_context``), so the forward returns ``(targets, context)``.
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa2.config import PredictorConfig
from vjepa2.models.encoder import check_indices
from vjepa2.nn import Block, RoPE3D, compute_dtype, grid_positions, run_blocks
from vjepa2.nn.init import init_weights, rescale_blocks


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x[b, ids[b]]`` for ``x`` ``[B, N, D]`` and ``ids`` ``[B, K]`` -> ``[B, K, D]``."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class Predictor(nn.Module):
    """``(context [B, Nc, D], context ids [B, Nc], target ids [B, Nt]) -> predictions [B, Nt, D]``."""

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, out = cfg.pred_dim, cfg.out_dim or cfg.embed_dim
        if cfg.levels > 1:
            D = cfg.embed_dim
            self.predictor_embed = nn.Sequential(nn.Linear(cfg.levels * D, D), nn.GELU(), nn.Linear(D, d))
        else:
            self.predictor_embed = nn.Linear(cfg.embed_dim, d)
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, d)) for _ in range(cfg.num_mask_tokens))
        if cfg.modality_embedding:
            self.img_mod_embed = nn.Parameter(torch.zeros(1, 1, d))
            self.video_mod_embed = nn.Parameter(torch.zeros(1, 1, d))
        self.predictor_blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.predictor_norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.predictor_proj = nn.Linear(d, out)
        if cfg.return_context:
            self.predictor_proj_context = nn.Linear(d, out)
        self.rope = RoPE3D(d // cfg.num_heads, cfg.rope_layout, cfg.rope_base)
        self.grad_checkpointing = False
        self.apply(init_weights)
        rescale_blocks(self.predictor_blocks)
        if not cfg.zero_init_mask_tokens:
            for token in self.mask_tokens:
                nn.init.trunc_normal_(token, std=0.02)
        if cfg.modality_embedding:
            nn.init.normal_(self.img_mod_embed, std=1e-6)
            nn.init.normal_(self.video_mod_embed, std=1e-6)

    def forward(
        self,
        x: torch.Tensor,
        masks_x: torch.Tensor,
        masks_y: torch.Tensor,
        mask_index: int = 1,
        grid_hw: tuple[int, int] | None = None,
        mod: str = "video",
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Predict the features of the target tokens.

        Args:
            x: context features ``[B, Nc, D]`` (``[B, Nc, levels * D]``) from the encoder's masked forward.
            masks_x: indices ``[B, Nc]`` of the context tokens.
            masks_y: indices ``[B, Nt]`` of the tokens to predict.
            mask_index: which mask token fills the targets (``mask_index % num_mask_tokens``). The default 1 is the
                official inference default; official training uses 0, and in the released weights only
                ``mask_tokens[0]`` is non-zero.
            grid_hw: patches per column and row for decoding positions; default ``img_size // patch_size`` squared.
            mod: ``"video"`` or ``"image"``: which modality embedding 2.1 predictors add.

        Returns:
            ``[B, Nt, out_dim or D]`` predictions (not normalised); with ``return_context`` also the context
            tokens' ``[B, Nc, out_dim or D]``, as ``(targets, context)``.
        """
        if mod not in ("video", "image"):
            raise ValueError(f"mod must be 'video' or 'image', got {mod!r}")
        B, n_ctx, _ = x.shape
        if masks_x.shape != (B, n_ctx):
            raise ValueError(f"masks_x has shape {tuple(masks_x.shape)}, expected {(B, n_ctx)} to match the context")
        masks_x, masks_y = check_indices(masks_x, None, "masks_x"), check_indices(masks_y, None, "masks_y")
        if masks_y.shape[0] != B:
            raise ValueError(f"masks_y has batch {masks_y.shape[0]}, expected {B}")
        token = self.mask_tokens[mask_index % len(self.mask_tokens)]
        tokens = torch.cat([self.predictor_embed(x), token.expand(B, masks_y.shape[1], -1)], dim=1)
        ids = torch.cat([masks_x, masks_y], dim=1).to(x.device)
        order = torch.argsort(ids, dim=1)
        tokens, ids = gather_tokens(tokens, order), torch.gather(ids, 1, order)
        if self.cfg.modality_embedding:
            tokens = tokens + (self.img_mod_embed if mod == "image" else self.video_mod_embed)
        grid = (self.cfg.img_size // self.cfg.patch_size,) * 2 if grid_hw is None else grid_hw
        cos, sin = self.rope(*grid_positions(ids, grid), dtype=compute_dtype(tokens))
        tokens = run_blocks(
            self.predictor_blocks, tokens, (cos.unsqueeze(1), sin.unsqueeze(1)), checkpointing=self.grad_checkpointing
        )
        tokens = gather_tokens(self.predictor_norm(tokens), torch.argsort(order, dim=1))
        targets = self.predictor_proj(tokens[:, n_ctx:])
        if self.cfg.return_context:
            return targets, self.predictor_proj_context(tokens[:, :n_ctx])
        return targets
