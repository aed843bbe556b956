"""Multiblock 3D ("tube") masks for V-JEPA 2 pretraining (official ``src/masks/multiseq_multiblock3d.py``).

Notable choices, all as in the official generator:

- **One block size per batch.** ``(t, h, w)`` is drawn from a ``torch.Generator`` seeded with ``seed + step``, where
  ``step`` counts the batches drawn so far (the official shared counter). Resuming replays the counter: set
  ``step`` (or ``load_state_dict``) to the number of batches already seen.
- **Positions per sample.** Each of ``num_blocks`` blocks gets a ``(top, left, start)`` drawn in that order from the
  global torch RNG (official) or from an explicit ``torch.Generator``. Blocks may overlap.
- **Context = complement of the union of blocks**; a sample whose context would be empty is redrawn.
- **Equal counts.** Index lists are ascending; context lists are truncated to the batch minimum (capped by
  ``max_keep``) and target lists to theirs, keeping the lowest indices (so late frames lose tokens first).

The token grid is ``(frames / tubelet, crop / patch, crop / patch)`` flattened in (t, h, w) raster order, the order
the encoder's ``masks`` argument expects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vjepa2.errors import UserError

Grid = tuple[int, int, int]
MaskPair = tuple[torch.Tensor, torch.Tensor]


def _check_range(name: str, lo_hi: tuple[float, float], low: float, high: float) -> None:
    lo, hi = lo_hi
    if not low <= lo <= hi <= high:
        raise UserError(f"MaskConfig.{name} must satisfy {low} <= lo <= hi <= {high}, got {lo_hi}")


@dataclass(frozen=True)
class MaskConfig:
    """One multiblock mask config (a ``cfgs_mask`` entry of the official YAML).

    Attributes:
        spatial_scale: range of the block area as a fraction of ``H * W``.
        temporal_scale: range of the block duration as a fraction of the time steps (1.0: tubes through all time).
        aspect_ratio: range of the block ``h / w``.
        num_blocks: blocks per sample; the target is their union.
        max_temporal_keep: the context spans at most this fraction of the time steps; later steps become targets.
        max_keep: optional cap on the context tokens per sample.
        full_complement: the target becomes the complement of the truncated context.
        pred_full_complement: the context becomes the complement of the truncated target.
        inv_block: swap the roles (predict the context from the blocks).
    """

    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    num_blocks: int = 8
    max_temporal_keep: float = 1.0
    max_keep: int | None = None
    full_complement: bool = False
    pred_full_complement: bool = False
    inv_block: bool = False

    def __post_init__(self) -> None:
        _check_range("spatial_scale", self.spatial_scale, 0.0, 1.0)
        _check_range("temporal_scale", self.temporal_scale, 0.0, 1.0)
        _check_range("aspect_ratio", self.aspect_ratio, 1e-6, math.inf)
        if self.num_blocks < 1:
            raise UserError(f"MaskConfig.num_blocks must be >= 1, got {self.num_blocks}")
        if not 0.0 < self.max_temporal_keep <= 1.0:
            raise UserError(f"MaskConfig.max_temporal_keep must be in (0, 1], got {self.max_temporal_keep}")
        if self.max_keep is not None and self.max_keep < 1:
            raise UserError(f"MaskConfig.max_keep must be >= 1 or None, got {self.max_keep}")
        if self.full_complement and self.pred_full_complement:
            raise UserError("MaskConfig: full_complement and pred_full_complement are exclusive")


# The two configs of every official pretrain/cooldown YAML: short-range (8 x 0.15) and long-range (2 x 0.7).
OFFICIAL_MASKS: tuple[MaskConfig, MaskConfig] = (
    MaskConfig(spatial_scale=(0.15, 0.15), num_blocks=8),
    MaskConfig(spatial_scale=(0.7, 0.7), num_blocks=2),
)


def token_grid(frames: int, crop: int | tuple[int, int], patch_size: int = 16, tubelet_size: int = 2) -> Grid:
    """Token grid ``(frames // tubelet, crop_h // patch, crop_w // patch)``; 16 frames at 256 px -> ``(8, 16, 16)``."""
    crop_h, crop_w = (crop, crop) if isinstance(crop, int) else crop
    grid = (frames // tubelet_size, crop_h // patch_size, crop_w // patch_size)
    if min(grid) < 1:
        raise UserError(f"empty token grid {grid} for {frames} frames at {crop} px")
    return grid


def _uniform(lo_hi: tuple[float, float], generator: torch.Generator) -> float:
    lo, hi = lo_hi
    return lo + torch.rand(1, generator=generator).item() * (hi - lo)


def block_size(cfg: MaskConfig, grid: Grid, seed: int) -> Grid:
    """The batch's block size ``(t, h, w)``, a pure function of ``seed`` (official ``_sample_block_size``)."""
    duration, height, width = grid
    g = torch.Generator().manual_seed(seed)
    t = max(1, int(duration * _uniform(cfg.temporal_scale, g)))
    keep = int(height * width * _uniform(cfg.spatial_scale, g))
    ar = _uniform(cfg.aspect_ratio, g)
    h = min(int(round(math.sqrt(keep * ar))), height)
    w = min(int(round(math.sqrt(keep / ar))), width)
    return t, max(h, 1), max(w, 1)  # a block of 0 rows (a grid too small for the scale) would leave no target


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(0, high, (1,), generator=generator))


def sample_target(cfg: MaskConfig, grid: Grid, size: Grid, generator: torch.Generator | None = None) -> torch.Tensor:
    """One sample's target: the union of ``num_blocks`` blocks of ``size``, as a bool ``[T, H, W]``.

    Time steps beyond ``max_temporal_keep`` are targets too (the context never reaches them).
    """
    duration, height, width = grid
    t, h, w = size
    target = torch.zeros(grid, dtype=torch.bool)
    for _ in range(cfg.num_blocks):
        top = _randint(height - h + 1, generator)
        left = _randint(width - w + 1, generator)
        start = _randint(duration - t + 1, generator)
        target[start : start + t, top : top + h, left : left + w] = True
    max_ctx_t = max(1, int(duration * cfg.max_temporal_keep))
    target[max_ctx_t:] = True
    return target


def _complements(ids: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    keep = torch.ones(len(ids), n, dtype=torch.bool)
    for row, i in zip(keep, ids, strict=True):
        row[i] = False
    return [row.nonzero()[:, 0] for row in keep]


def _collate(cfg: MaskConfig, ctx: list[torch.Tensor], tgt: list[torch.Tensor], n: int) -> MaskPair:
    """Truncate to the batch minimum (lowest indices kept), apply the complement options, stack."""
    k_ctx = min(len(c) for c in ctx)
    if cfg.max_keep is not None:
        k_ctx = min(k_ctx, cfg.max_keep)
    k_tgt = min(len(c) for c in tgt)
    ctx, tgt = [c[:k_ctx] for c in ctx], [c[:k_tgt] for c in tgt]
    if cfg.full_complement:
        tgt = _complements(ctx, n)
    elif cfg.pred_full_complement:
        ctx = _complements(tgt, n)
    ctx_t, tgt_t = torch.stack(ctx), torch.stack(tgt)
    return (tgt_t, ctx_t) if cfg.inv_block else (ctx_t, tgt_t)


def sample_lists(
    cfg: MaskConfig, grid: Grid, batch_size: int, seed: int, generator: torch.Generator | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Untruncated per-sample ``(context ids, target ids)`` lists: block size from ``seed``, positions from
    ``generator`` (``None``: the global torch RNG, official). A sample with an empty context is redrawn."""
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    size = block_size(cfg, grid, seed)
    ctx, tgt = [], []
    for _ in range(batch_size):
        target = sample_target(cfg, grid, size, generator).flatten()
        while target.all():  # empty context: redraw this sample
            target = sample_target(cfg, grid, size, generator).flatten()
        ctx.append((~target).nonzero()[:, 0])
        tgt.append(target.nonzero()[:, 0])
    return ctx, tgt


def collate(cfg: MaskConfig, ctx: list[torch.Tensor], tgt: list[torch.Tensor], grid: Grid) -> MaskPair:
    """One loader batch's masks: truncate to the batch minimum (lowest indices kept), apply the complement options,
    stack. The official collator does this per loader batch, i.e. per device."""
    return _collate(cfg, ctx, tgt, math.prod(grid))


def sample_batch(
    cfg: MaskConfig, grid: Grid, batch_size: int, seed: int, generator: torch.Generator | None = None
) -> MaskPair:
    """Masks for one batch and one config: block size from ``seed``, positions from ``generator``.

    Args:
        cfg: the mask config.
        grid: token grid ``(T, H, W)``.
        batch_size: samples in the batch.
        seed: seeds the block-size generator (official: the step counter).
        generator: RNG for block positions; ``None`` uses the global torch RNG (official).

    Returns:
        ``(context, target)`` LongTensors ``[B, K_ctx]`` and ``[B, K_tgt]`` of ascending token indices.
    """
    return collate(cfg, *sample_lists(cfg, grid, batch_size, seed, generator), grid)


def sample_masks(
    batch_size: int,
    grid: Grid,
    configs: Sequence[MaskConfig] = OFFICIAL_MASKS,
    generator: torch.Generator | None = None,
    step: int = 0,
    seed: int = 0,
) -> list[MaskPair]:
    """One ``(context [B, K_ctx], target [B, K_tgt])`` pair per config, each for its own encoder/predictor pass.

    Block sizes use the seed ``seed + step``, shared across configs as in the official collator (each config's
    generator keeps its own counter, and all advance once per batch).
    """
    return [sample_batch(cfg, grid, batch_size, seed + step, generator) for cfg in configs]


class MaskGenerator:
    """Resumable multiblock generator for one config over one grid (official ``_MaskGenerator``).

    Attributes:
        step: batches drawn so far; the next batch's block size uses the seed ``seed + step``.
    """

    def __init__(self, cfg: MaskConfig, grid: Grid, seed: int = 0) -> None:
        self.cfg, self.grid, self.seed, self.step = cfg, grid, seed, 0

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> MaskPair:
        """``(context [B, K_ctx], target [B, K_tgt])`` for the next batch; advances ``step``."""
        masks = sample_batch(self.cfg, self.grid, batch_size, self.seed + self.step, generator)
        self.step += 1
        return masks

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.seed = int(state["step"]), int(state.get("seed", self.seed))


class MaskSampler:
    """The official ``MaskCollator`` for one frame count: one :class:`MaskGenerator` per config, stepped together.

    Example:
        >>> sampler = MaskSampler(OFFICIAL_MASKS, token_grid(16, 256))
        >>> (ctx0, tgt0), (ctx1, tgt1) = sampler(batch_size=4)  # one pair per config; step is now 1
    """

    def __init__(self, configs: Sequence[MaskConfig] = OFFICIAL_MASKS, grid: Grid = (8, 16, 16), seed: int = 0):
        if not configs:
            raise UserError("MaskSampler needs at least one MaskConfig")
        self.grid = grid
        self.generators = [MaskGenerator(cfg, grid, seed) for cfg in configs]

    @property
    def configs(self) -> tuple[MaskConfig, ...]:
        return tuple(g.cfg for g in self.generators)

    @property
    def step(self) -> int:
        """Batches drawn so far (all generators advance together)."""
        return self.generators[0].step

    @step.setter
    def step(self, value: int) -> None:
        for g in self.generators:
            g.step = value

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> list[MaskPair]:
        """One ``(context, target)`` pair per config for the next batch; advances ``step``."""
        return [g(batch_size, generator) for g in self.generators]

    def advance(self, n: int = 1) -> None:
        """Skip ``n`` batches (the official resume replays ``start_epoch * ipe`` counter steps)."""
        self.step += n

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "seed": self.generators[0].seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g in self.generators:
            g.load_state_dict(state)
