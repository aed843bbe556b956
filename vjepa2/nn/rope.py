"""3D rotary position embedding (RoPE) as used by V-JEPA 2.

Each attention head's dims are split into three equal even bands ``d = 2 * ((head_dim // 3) // 2)`` for time,
height and width, followed by an unrotated remainder (64 -> 20/20/20 + 4, 80 -> 26/26/26 + 2, 32 -> 10/10/10 + 2).
Only queries and keys are rotated. Pairs are always adjacent dims ``(2k, 2k + 1)``: ``y[2k] = -x[2k+1]``,
``y[2k+1] = x[2k]`` and ``out = x * cos + y * sin``. The layouts differ in which angle each dim gets:

- ``"tiled"`` (official V-JEPA 2, needed by the released weights): the ``d/2`` angles are repeated as
  ``[theta_0 .. theta_{d/2-1}, theta_0 .. theta_{d/2-1}]``, so the two members of a pair get different angles
  and the map is not a rotation.
- ``"interleaved"`` (textbook RoPE, V-JEPA 2.1): ``[theta_0, theta_0, theta_1, theta_1, ...]``.

Angles are computed in the compute dtype exactly as the official code does (so bf16 runs round like it).
The module builds full-width ``cos``/``sin`` tables once per forward (identity on the unrotated dims);
every layer then applies them with :func:`apply_rope`.
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa2.config import RopeLayout


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """``(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)`` along the last dim."""
    y = x.unflatten(-1, (-1, 2)).flip(-1)  # one copy: (x1, x0, x3, x2, ...)
    y[..., 0].neg_()
    return y.flatten(-2)


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate ``x`` ``[..., N, head_dim]`` with tables ``(cos, sin)`` broadcastable to it.

    Computes ``x * cos + rotate_pairs(x) * sin`` (bit for bit) as ``x * cos + swap(x) * sin'`` with the pair swap
    a single copy and the sign moved onto the small table (``sin'[2k] = -sin[2k]``): three passes over ``x``
    instead of five.
    """
    cos, sin = rope
    s = sin.unflatten(-1, (-1, 2))
    signed_sin = torch.stack((-s[..., 0], s[..., 1]), dim=-1).flatten(-2)
    out = x * cos
    out += x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2) * signed_sin
    return out


def grid_positions(ids: torch.Tensor, grid_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode flattened (t, h, w) raster token indices into integer coordinates.

    Args:
        ids: token indices, any shape.
        grid_hw: patches per column and per row ``(H_p, W_p)`` of the real input grid.
    """
    h_p, w_p = grid_hw
    per_frame = h_p * w_p
    t = ids // per_frame
    rem = ids - t * per_frame
    h = rem // w_p
    return t, h, rem - h * w_p


class RoPE3D(nn.Module):
    """Sin/cos tables for 3D RoPE over one head of size ``head_dim``."""

    def __init__(self, head_dim: int, layout: RopeLayout = "tiled", base: float = 10000.0) -> None:
        super().__init__()
        if layout not in ("tiled", "interleaved"):
            raise ValueError(f"unknown RoPE layout {layout!r}; use 'tiled' (official) or 'interleaved'")
        self.head_dim = head_dim
        self.band = 2 * ((head_dim // 3) // 2)
        self.layout = layout
        self.base = base

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, band={self.band}, layout={self.layout!r}"

    def _band_angles(self, pos: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Angles ``[..., band]`` for positions ``pos`` ``[...]`` (same op order and dtype as the official code)."""
        half = self.band // 2
        omega = torch.arange(half, dtype=dtype, device=pos.device)
        omega /= half
        omega = 1.0 / self.base**omega
        freq = pos.to(dtype).unsqueeze(-1) * omega
        if self.layout == "tiled":
            return torch.cat([freq, freq], dim=-1)
        return freq.repeat_interleave(2, dim=-1)

    def forward(
        self,
        t: torch.Tensor,
        h: torch.Tensor | None = None,
        w: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-width tables ``(cos, sin)`` of shape ``[..., N, head_dim]`` for positions ``[..., N]``.

        With ``h`` and ``w`` omitted only the time band rotates (the AC predictor's action/state tokens).
        """
        bands = [self._band_angles(t, dtype)]
        for p in (h, w):
            bands.append(self._band_angles(p, dtype) if p is not None else None)
        rest = self.head_dim - 3 * self.band
        cos, sin = [], []
        for angles in bands:
            if angles is None:
                angles = t.new_zeros((*t.shape, self.band), dtype=dtype)
            cos.append(angles.cos())
            sin.append(angles.sin())
        if rest:
            cos.append(t.new_ones((*t.shape, rest), dtype=dtype))
            sin.append(t.new_zeros((*t.shape, rest), dtype=dtype))
        return torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype queries will have: the autocast dtype when autocast is on for ``x``'s device, else ``x.dtype``."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype
