"""Attentive probe (official ``src/models/attentive_pooler.py``).

``depth - 1`` self-attention Blocks over the frozen tokens (no RoPE, LayerNorm eps 1e-5), then one
cross-attention block from learned queries, then a linear head per query: one query for classification, several
for multi-task probes (EK100: verb, noun, action).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vjepa2.config import ClassifierConfig
from vjepa2.nn import Block, CrossAttentionBlock, run_blocks
from vjepa2.nn.init import init_weights, rescale_blocks


class AttentivePooler(nn.Module):
    """Tokens ``[B, N, D]`` -> pooled queries ``[B, Q, D]``."""

    def __init__(self, cfg: ClassifierConfig, num_queries: int = 1) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, d))
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth - 1)
        )
        self.cross_attention_block = CrossAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps)
        nn.init.trunc_normal_(self.query_tokens, std=0.02)
        self.apply(init_weights)
        rescale_blocks(self.blocks)
        # official: the last self-attention block's layer id + 1, which is 1 when there is none (depth 1)
        self.cross_attention_block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * max(cfg.depth - 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = run_blocks(self.blocks, x)
        return self.cross_attention_block(self.query_tokens.expand(x.shape[0], -1, -1), x)


class AttentiveClassifier(nn.Module):
    """Tokens ``[B, N, D]`` -> logits ``[B, C]`` (a list of ``[B, C_i]`` for a multi-head config)."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pooler = AttentivePooler(cfg, num_queries=len(cfg.heads))
        if isinstance(cfg.num_classes, tuple):
            self.heads = nn.ModuleList(nn.Linear(cfg.embed_dim, c) for c in cfg.num_classes)
        else:
            self.linear = nn.Linear(cfg.embed_dim, cfg.num_classes)
        for m in self.children():
            if m is not self.pooler:
                m.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        q = self.pooler(x)  # [B, Q, D]
        if isinstance(self.cfg.num_classes, tuple):
            return [head(q[:, i]) for i, head in enumerate(self.heads)]
        return self.linear(q[:, 0])
