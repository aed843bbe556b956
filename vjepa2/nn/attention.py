"""Multi-head attention shared by every model: the encoder, both predictors and the attentive probe.

:class:`Attention` is the one self-attention (fused ``qkv`` Linear with bias, output ``proj``, optional RoPE
tables and optional boolean mask). :class:`CrossAttention` is the probe's query-to-tokens attention with separate
``q`` and ``kv`` Linears and no output projection, as in the official pooler. Both go through :func:`attend`.

:func:`attend` uses ``F.scaled_dot_product_attention`` everywhere except bf16 inference on CPU, where a blocked
attention built from bf16 matmuls (:func:`blocked_attention`) is about 1.6x faster than PyTorch's CPU flash
kernel, which gains nothing from bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vjepa2.nn.rope import apply_rope

# The blocked CPU path pays a few Python-level ops per score block; below about this many query x key pairs per
# head SDPA is as fast (measured: 1.2-1.8x faster from 258^2 pairs up, a toss-up at 128^2 and 256^2 with d = 32).
BLOCKED_MIN_PAIRS = 1 << 17
# Short sequences of a batch go through the blocked path in groups of whole samples (all heads of several samples
# per batched matmul) once the batch has about this many query x key pairs in all (measured with d = 32: 1.5-2x
# faster than SDPA from 2^15 pairs up, e.g. 1.8x for the AC predictor's 66 tokens, slower below 2^14).
GROUPED_MIN_PAIRS = 1 << 15
# Score block of ~2^20 entries (2 MiB in bf16): large enough for efficient matmuls, small enough for L2/L3.
_SCORE_BLOCK = 1 << 20


def _grouped(B: int, H: int, Nq: int, Nk: int) -> bool:
    """Whether :func:`blocked_attention` puts several whole samples in one score block."""
    return B >= 2 and 2 * H * Nq * Nk <= _SCORE_BLOCK


def use_blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> bool:
    """Whether :func:`attend` takes the blocked bf16 CPU path: CPU, bf16 q/k/v, no autograd, a bool (or no) mask
    and at least :data:`BLOCKED_MIN_PAIRS` query-key pairs per head, or short sequences (several samples per score
    block) with at least :data:`GROUPED_MIN_PAIRS` pairs in all."""
    if q.device.type != "cpu" or not (q.dtype == k.dtype == v.dtype == torch.bfloat16):
        return False
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return False
    if mask is not None and mask.dtype != torch.bool:
        return False
    B, H, Nq, _ = q.shape
    Nk = k.shape[-2]
    if Nq * Nk >= BLOCKED_MIN_PAIRS:
        return True
    return _grouped(B, H, Nq, Nk) and B * H * Nq * Nk >= GROUPED_MIN_PAIRS


def blocked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax attention computed one score block at a time; returns ``[B, Nq, heads * head_dim]``.

    ``q`` ``[B, h, Nq, d]``, ``k``/``v`` ``[B, h, Nk, d]`` (any strides with a contiguous last dim), ``mask`` a bool
    tensor broadcastable to ``[B, h, Nq, Nk]``, True where attention is allowed. A score block (about
    ``_SCORE_BLOCK`` entries: a band of query rows of one head, several whole heads of one sample, or all heads of
    several samples when the sequences are short) is one matmul
    into a reused buffer, softmaxed in place and multiplied by ``v`` into the output, so no ``Nq x Nk`` tensor per
    head is ever allocated and the block stays in cache. Scores are rounded to the input dtype before the softmax
    (as in an eager ``softmax(q @ k^T) @ v``); ``q`` is pre-scaled by ``d^-0.5`` in its own dtype (exact for
    power-of-4 ``d``). Rows whose keys are all masked out give zeros, as SDPA does on CPU.
    """
    B, H, Nq, D = q.shape
    Nk = k.shape[-2]
    out = q.new_empty(B, Nq, H, D)
    if Nq == 0 or Nk == 0 or B * H == 0:
        return out.zero_().flatten(2)
    q = q * D**-0.5
    bias = None
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
        bias = bias.expand(B, H, Nq, Nk)
    heads = min(H, _SCORE_BLOCK // (Nq * Nk))
    if _grouped(B, H, Nq, Nk):  # short sequences: all heads of several samples per batched matmul
        G = min(B, _SCORE_BLOCK // (H * Nq * Nk))
        scores, tmp = q.new_empty(G * H, Nq, Nk), q.new_empty(G * H, Nq, D)
        for b0 in range(0, B, G):
            b1 = min(b0 + G, B)
            n = (b1 - b0) * H
            s, o = scores[:n], tmp[:n]
            kt = k[b0:b1].flatten(0, 1).transpose(1, 2)
            if bias is None:
                torch.bmm(q[b0:b1].flatten(0, 1), kt, out=s)
            else:
                torch.baddbmm(bias[b0:b1].flatten(0, 1), q[b0:b1].flatten(0, 1), kt, out=s)
            torch.softmax(s, -1, out=s)
            torch.bmm(s, v[b0:b1].flatten(0, 1), out=o)
            out[b0:b1] = o.view(b1 - b0, H, Nq, D).transpose(1, 2)
    elif heads >= 2:  # small heads: several per batched matmul
        scores, tmp = q.new_empty(heads, Nq, Nk), q.new_empty(heads, Nq, D)
        for b in range(B):
            for h0 in range(0, H, heads):
                h1 = min(h0 + heads, H)
                s, o = scores[: h1 - h0], tmp[: h1 - h0]
                kt = k[b, h0:h1].transpose(1, 2)
                if bias is None:
                    torch.bmm(q[b, h0:h1], kt, out=s)
                else:
                    torch.baddbmm(bias[b, h0:h1], q[b, h0:h1], kt, out=s)
                torch.softmax(s, -1, out=s)
                torch.bmm(s, v[b, h0:h1], out=o)
                out[b, :, h0:h1] = o.transpose(0, 1)
    else:  # large heads: one head at a time, in bands of query rows
        rows = max(1, min(Nq, _SCORE_BLOCK // Nk))
        scores = q.new_empty(rows, Nk)
        for b in range(B):
            for h in range(H):
                kt, vh = k[b, h].transpose(0, 1), v[b, h]
                for r0 in range(0, Nq, rows):
                    r1 = min(r0 + rows, Nq)
                    s = scores[: r1 - r0]
                    if bias is None:
                        torch.mm(q[b, h, r0:r1], kt, out=s)
                    else:
                        torch.addmm(bias[b, h, r0:r1], q[b, h, r0:r1], kt, out=s)
                    torch.softmax(s, -1, out=s)
                    torch.mm(s, vh, out=out[b, r0:r1, h])
    if mask is not None:
        dead = ~mask.any(-1, keepdim=True)  # [..., Nq, 1]: rows with nothing to attend to are NaN -> 0
        if dead.any():
            out.masked_fill_(dead.expand(B, H, Nq, 1).permute(0, 2, 1, 3), 0.0)
    return out.flatten(2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention on ``[B, heads, N, head_dim]``; ``mask`` is True where attention is allowed.

    Returns ``[B, N, heads * head_dim]``. bf16 inference on CPU goes through :func:`blocked_attention`, everything
    else (fp32, CUDA, training) through ``F.scaled_dot_product_attention``.
    """
    if use_blocked_attention(q, k, v, mask):
        return blocked_attention(q, k, v, mask)
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
        return self.proj(attend(*self.heads(x, rope), mask))

    def heads(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rotated queries and keys and the values of ``x`` ``[B, N, dim]``, each ``[B, heads, N, head_dim]``."""
        B, N, _ = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim)
        if rope is None:
            q, k = qkv[:, :, :2].permute(2, 0, 3, 1, 4)
        else:  # rotate q and k in one pass: [2, B, heads, N, head_dim] views of the qkv output
            q, k = apply_rope(qkv[:, :, :2].permute(2, 0, 3, 1, 4), rope)
        return q, k, qkv[:, :, 2].transpose(1, 2)


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
