"""Batches for pretraining: the built-in synthetic world, weighted mixtures of video/image datasets, or the frames
of robot trajectories.

Both sources are deterministic functions of ``(seed, step)``: a resumed run sees exactly the batches an
uninterrupted run would have seen, and with ``world`` processes rank ``r`` gets the samples ``r::world`` of the
global batch (matching how :func:`~vjepa2.train.pretrain.step_masks` slices the masks).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vjepa2.data.clip_bank import ClipBankDataset, bank_sources, is_bank_source
from vjepa2.data.datasets import VideoClipDataset, make_loader
from vjepa2.data.sampler import DistributedWeightedSampler
from vjepa2.data.synthetic import SyntheticVideoDataset, WorldConfig, split_seeds
from vjepa2.data.trajectories import TRAJECTORY_SUFFIXES
from vjepa2.data.trajectory_dataset import TrajectoryClip, TrajectoryClipDataset
from vjepa2.data.transforms import AugmentConfig, VideoAugment
from vjepa2.errors import ConfigError, UserError
from vjepa2.train.distributed import DistWorld
from vjepa2.train.pretrain_config import PretrainConfig

SYNTHETIC = "synthetic"


class _SyntheticClips(Dataset):
    """Item ``i`` is the clip of scene ``i`` of the world's ``train`` split (labels dropped; val/test stay unseen)."""

    def __init__(self, config: WorldConfig) -> None:
        self.data = SyntheticVideoDataset(config, seeds=split_seeds("train", 10**9))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i][0]


def _step_indices(start_step: int, batch: int, world: DistWorld) -> Iterator[list[int]]:
    step = start_step
    while True:
        yield list(range(step * batch + world.rank, (step + 1) * batch, world.size))
        step += 1


def synthetic_batches(cfg: PretrainConfig, world: DistWorld, start_step: int = 0) -> Iterator[tuple[torch.Tensor, int]]:
    """Endless ``(clips [b, 3, T, crop, crop], 0)``: global batch ``s`` holds scenes ``[s*B, (s+1)*B)``."""
    world_cfg = replace(cfg.data.world, resolution=cfg.data.crop, frames=cfg.data.frames)
    dataset = _SyntheticClips(world_cfg)
    loader = DataLoader(
        dataset,
        batch_sampler=_step_indices(start_step, cfg.data.batch_size, world),
        num_workers=cfg.data.num_workers,
        persistent_workers=cfg.data.num_workers > 0,
    )
    for clips in loader:
        yield clips, 0


def file_batches(cfg: PretrainConfig, world: DistWorld, start_step: int = 0) -> Iterator[tuple[torch.Tensor, int]]:
    """Endless ``(clips, skipped files)`` from the weighted mixture of ``cfg.data.datasets``."""
    d = cfg.data
    dataset = VideoClipDataset(
        list(d.datasets),
        weights=list(d.weights) or [1.0] * len(d.datasets),
        frames=d.frames,
        fps=d.fps if d.frame_step is None else None,
        frame_step=d.frame_step,
        transform=VideoAugment(AugmentConfig(crop=d.crop, blur=d.blur)),
        seed=cfg.run.seed,
    )
    loader = make_loader(
        dataset,
        batch_size=d.batch_size // world.size,
        num_workers=d.num_workers,
        rank=world.rank,
        world_size=world.size,
        samples_per_epoch=d.ipe * d.batch_size,
    )
    epoch, start = divmod(start_step, d.ipe)
    while True:
        loader.set_epoch(epoch, start_batch=start)
        for batch in loader:
            yield batch.clips, batch.num_skipped
        epoch, start = epoch + 1, 0


def is_trajectory_source(source: str) -> bool:
    """A trajectory file (npz/h5), or a folder holding such files (and no videos)."""
    path = Path(source)
    if path.is_file():
        return path.suffix.lower() in TRAJECTORY_SUFFIXES
    return path.is_dir() and any(f.suffix.lower() in TRAJECTORY_SUFFIXES for f in path.rglob("*"))


def trajectory_batches(
    cfg: PretrainConfig, world: DistWorld, start_step: int = 0
) -> Iterator[tuple[torch.Tensor, int]]:
    """Endless ``(clips, 0)`` of frames from trajectories (e.g. ``vjepa2 collect`` output of any env), resized to crop.

    Only the frames are batched, so trajectories of different envs (state and action widths) mix freely.
    """
    d = cfg.data
    dataset = TrajectoryClipDataset(
        list(d.datasets), frames=d.frames, fps=d.fps if d.frame_step is None else None, frame_step=d.frame_step,
        resolution=d.crop, transform=f"resize+blur={d.blur:g}" if d.blur else "resize", seed=cfg.run.seed,
    )  # fmt: skip
    sampler = DistributedWeightedSampler(
        np.ones(len(dataset)), d.ipe * d.batch_size, world.rank, world.size, seed=cfg.run.seed, yield_keys=True
    )
    loader = DataLoader(
        dataset, batch_size=d.batch_size // world.size, sampler=sampler, num_workers=d.num_workers, collate_fn=_clips
    )
    epoch, start = divmod(start_step, d.ipe)
    while True:
        sampler.set_epoch(epoch, start_index=start * (d.batch_size // world.size))
        for clips in loader:
            yield clips, 0
        epoch, start = epoch + 1, 0


def _clips(items: list[TrajectoryClip]) -> torch.Tensor:
    """The clips of a batch of trajectory items, ``[b, 3, T, crop, crop]``."""
    return torch.stack([item.clip for item in items])


def bank_batches(cfg: PretrainConfig, world: DistWorld, start_step: int = 0) -> Iterator[tuple[torch.Tensor, int]]:
    """Endless ``(clips, 0)`` from clip banks (``vjepa2 prepare-mix``): global batch ``s`` is a function of
    ``(seed, s)``, and rank ``r`` takes its samples ``r::size``."""
    d = cfg.data
    banks = bank_sources(d.datasets)
    if d.weights and len(d.weights) != len(banks):
        raise ConfigError(
            f"data.weights has {len(d.weights)} entries for {len(banks)} clip banks {[b for b, _ in banks]}"
        )
    weights = list(d.weights) or [1.0 if w is None else w for _, w in banks]
    dataset = ClipBankDataset([b for b, _ in banks], weights, d.frames, d.frame_step or 1, d.crop, seed=cfg.run.seed)
    for step in itertools.count(start_step):
        yield dataset.batch(step, range(world.rank, d.batch_size, world.size)), 0


def pretrain_batches(cfg: PretrainConfig, world: DistWorld, start_step: int = 0) -> Iterator[tuple[torch.Tensor, int]]:
    """The batch stream for ``cfg.data`` from ``start_step`` on, for this rank."""
    if cfg.data.batch_size % world.size:
        raise UserError(f"data.batch_size={cfg.data.batch_size} is not divisible by the {world.size} processes")
    sources = tuple(cfg.data.datasets)
    if any(is_bank_source(s) for s in sources):
        if not all(is_bank_source(s) for s in sources):
            raise ConfigError(f"data.datasets mixes clip banks (.npy, mix.json) with other sources: {list(sources)}")
        return bank_batches(cfg, world, start_step)
    if sources == (SYNTHETIC,):
        if cfg.data.blur:
            raise UserError("data.blur applies to video and trajectory datasets, not to 'synthetic'")
        return synthetic_batches(cfg, world, start_step)
    if SYNTHETIC in sources:
        raise UserError("data.datasets: 'synthetic' cannot be mixed with file datasets")
    kinds = {is_trajectory_source(s) for s in sources}
    if kinds == {True}:
        return trajectory_batches(cfg, world, start_step)
    if len(kinds) > 1:
        raise UserError(f"data.datasets mixes robot trajectories and videos: {list(sources)}")
    return file_batches(cfg, world, start_step)
