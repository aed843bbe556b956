"""Layers shared by every vjepa2 model: 3D-RoPE, attention, the transformer block."""

from vjepa2.nn.attention import Attention, CrossAttention, attend
from vjepa2.nn.block import MLP, Block, CrossAttentionBlock, run_blocks
from vjepa2.nn.rope import RoPE3D, apply_rope, compute_dtype, grid_positions, rotate_pairs

__all__ = [
    "MLP",
    "Attention",
    "Block",
    "CrossAttention",
    "CrossAttentionBlock",
    "RoPE3D",
    "apply_rope",
    "attend",
    "compute_dtype",
    "grid_positions",
    "rotate_pairs",
    "run_blocks",
]
