"""Multi-head attention shared by every model: the encoder, both predictors and the attentive probe.

:class:`Attention` is the one self-attention (fused ``qkv`` Linear with bias, output ``proj``, optional RoPE
tables and optional boolean mask). :class:`CrossAttention` is the probe's query-to-tokens attention with separate
``q`` and ``kv`` Linears and no output projection, as in the official pooler. Both go through :func:`attend`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2.nn.rope import apply_rope


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention on ``[B, heads, N, head_dim]``; ``mask`` is True where attention is allowed.

    Returns ``[B, N, heads * head_dim]``.
    """
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).flatten(2)


class Attention(nn.Module):
    """Self-attention ``[B, N, dim] -> [B, N, dim]`` with optional 3D-RoPE tables and attention mask."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, N, _ = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x [B,h,N,hd]
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        return self.proj(attend(q, k, v, mask))


class CrossAttention(nn.Module):
    """Queries ``[B, Q, dim]`` attend to tokens ``[B, N, dim]``; separate ``q``/``kv`` Linears, no output projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)

    def forward(self, queries: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        B, Q, _ = queries.shape
        N = x.shape[1]
        q = self.q(queries).view(B, Q, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return attend(q, k, v)
