"""Weight initialisation shared by all models (the official scheme)."""

from __future__ import annotations

import math

from torch import nn


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Linear/Conv weights ~ trunc-normal(std), biases 0, LayerNorm weight 1 and bias 0. Use with ``Module.apply``."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv3d)):
        nn.init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def rescale_blocks(blocks: nn.ModuleList) -> None:
    """Divide each block's ``attn.proj`` and ``mlp.fc2`` weights by ``sqrt(2 * layer_id)``, ``layer_id`` from 1."""
    for layer_id, blk in enumerate(blocks, start=1):
        for weight in (blk.attn.proj.weight, blk.mlp.fc2.weight):
            weight.data.div_(math.sqrt(2.0 * layer_id))
