"""The one pre-norm transformer Block (and the probe's cross-attention block built from the same parts)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from vjepa2.nn.attention import Attention, CrossAttention, attend


class MLP(nn.Module):
    """``fc1 -> GELU (exact) -> fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if torch.is_grad_enabled() and h.requires_grad:
            return self.fc2(self.act(h))
        return self.fc2(torch._C._nn.gelu_(h))  # inference: GELU in place on fc1's fresh output (bit-identical)


class Block(nn.Module):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``; no layer-scale, no drop-path (as in V-JEPA 2)."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, norm_eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x``: ``[B, N, dim]``; ``rope``: tables from :class:`~vjepa2.nn.rope.RoPE3D`; ``mask``: bool ``[N, N]``."""
        x = x + self.attn(self.norm1(x), rope, mask)
        return x + self.mlp(self.norm2(x))

    def step(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Incremental (KV-cached) forward of new tokens that see every cached token and each other, unmasked.

        Equals :meth:`forward` on ``cat(past tokens, x)`` restricted to the new tokens whenever the mask lets the new
        tokens see all of them and the past tokens see none of the new ones (a new block of a block-causal sequence).

        Args:
            x: new tokens ``[B, n, dim]``.
            rope: tables of the new tokens' positions (broadcastable to ``[B, heads, n, head_dim]``).
            past: cached rotated keys and values ``[1 or B, heads, n_past, head_dim]`` of the earlier tokens.

        Returns:
            The new tokens' outputs ``[B, n, dim]`` and their ``(keys, values)`` ``[B, heads, n, head_dim]``.
        """
        q, k, v = self.attn.heads(self.norm1(x), rope)
        kv = (k, v)
        if past is not None:
            B = x.shape[0]
            k = torch.cat([past[0].expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([past[1].expand(B, -1, -1, -1), v], dim=2)
        x = x + self.attn.proj(attend(q, k, v))
        return x + self.mlp(self.norm2(x)), kv


class CrossAttentionBlock(nn.Module):
    """``q + xattn(q, norm1(x))`` then ``q + mlp(norm2(q))``; the query itself is not normalised."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.xattn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        q = q + self.xattn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))


def run_blocks(
    blocks: Iterable[nn.Module],
    x: torch.Tensor,
    rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    mask: torch.Tensor | None = None,
    checkpointing: bool = False,
) -> torch.Tensor:
    """Apply ``blocks`` in order, with per-block activation checkpointing when training with ``checkpointing``."""
    for blk in blocks:
        if checkpointing and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(blk, x, rope, mask, use_reentrant=False)
        else:
            x = blk(x, rope, mask)
    return x
