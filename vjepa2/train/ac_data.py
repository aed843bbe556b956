"""Batches for world-model training: clips of trajectories as cached encoder features (or encoded on the fly).

Batches are a function of ``(seed, step)``: a weighted sampler over trajectories (uniform), sharded by rank, with
per-item randomness from ``(seed, epoch, position, index)``, so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from vjepa2.data.sampler import DistributedWeightedSampler
from vjepa2.data.trajectories import TrajectoryClipDataset
from vjepa2.plan.world_model import encode_frames
from vjepa2.train import distributed as dist_utils
from vjepa2.train.features import FeatureClipDataset, build_feature_cache

if TYPE_CHECKING:
    from vjepa2.train.ac import ACTrainConfig


def ac_dataset(cfg: ACTrainConfig, world: dist_utils.World, encoder) -> TrajectoryClipDataset:
    """Feature clips from the cache (built by rank 0 on first use) or pixel clips."""
    d = cfg.data
    kwargs = {"frames": d.frames, "fps": d.fps if d.frame_step is None else None, "frame_step": d.frame_step}
    pixels = TrajectoryClipDataset(list(d.trajectories), resolution=d.resolution, transform=d.transform, **kwargs)
    if not d.cache_features:
        return pixels
    name = f"{cfg.model.encoder}-{Path(cfg.model.encoder_weights or 'random').stem}-{d.resolution}-{d.transform}"
    cache = Path(cfg.run.out) / "features" / name
    if world.is_main:
        build_feature_cache(encoder, pixels.paths, cache, d.resolution, d.transform, cfg.run.dtype, cfg.run.progress)
    if world.distributed:
        torch.distributed.barrier()
    return FeatureClipDataset(pixels.paths, cache, seed=cfg.run.seed, **kwargs)


def ac_batches(
    cfg: ACTrainConfig, world: dist_utils.World, encoder, start_step: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless ``(features [b, T, HW, D], actions [b, T-1, 7], states [b, T, 7])`` for this rank."""
    d = cfg.data
    if d.batch_size % world.size:
        raise ValueError(f"data.batch_size={d.batch_size} is not divisible by the {world.size} processes")
    dataset = ac_dataset(cfg, world, encoder)
    per_epoch = max(len(dataset), d.batch_size) // d.batch_size * d.batch_size
    sampler = DistributedWeightedSampler(
        np.ones(len(dataset)), per_epoch, world.rank, world.size, seed=cfg.run.seed, yield_keys=True
    )
    loader = DataLoader(dataset, batch_size=d.batch_size // world.size, sampler=sampler, num_workers=d.num_workers)
    batches_per_epoch = per_epoch // d.batch_size
    epoch, start = divmod(start_step, batches_per_epoch)
    while True:
        sampler.set_epoch(epoch, start_index=start * (d.batch_size // world.size))
        for item in loader:
            clip = item.clip
            if not d.cache_features:  # pixels [b, 3, T, H, W] -> features
                clip = encode_frames(encoder, clip.to(world.device), cfg.run.dtype).clone()  # a normal tensor
            yield clip, item.actions, item.states
        epoch, start = epoch + 1, 0
