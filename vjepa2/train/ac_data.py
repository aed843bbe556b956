"""Batches for world-model training: clips of trajectories as cached encoder features (or encoded on the fly).

Batches are a function of ``(seed, step)``: a weighted sampler over trajectories (uniform), sharded by rank, with
per-item randomness from ``(seed, epoch, position, index)``, so a resumed run sees the same batches. Actions are
those of :class:`~vjepa2.data.trajectory_dataset.TrajectoryClipDataset`: pose differences (7-D) for Franka-style
trajectories, the stored actions between two sampled frames stacked (frame step x env action dim) otherwise;
:func:`data_dims` gives the predictor's widths. ``data.trajectories`` entries are trajectory files or folders of
them, DROID trajectory directories or roots (``droid:PATH``) or LeRobot datasets (``lerobot:PATH``); a DROID trajectory
directory or a LeRobot dataset root is recognised without its prefix (:func:`source_kind`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vjepa2.data.sampler import DistributedWeightedSampler
from vjepa2.data.trajectory_dataset import TrajectoryClipDataset
from vjepa2.errors import ConfigError, UserError
from vjepa2.models.encode import encode_frames
from vjepa2.train import distributed as dist_utils
from vjepa2.train.ac_config import ACTrainConfig
from vjepa2.train.features import FeatureClipDataset, build_feature_cache, encoder_digest

SOURCE_PREFIXES = ("droid", "lerobot")


def source_kind(entry: str) -> tuple[str, str]:
    """``(kind, path)`` of one ``data.trajectories`` entry: ``"droid"`` or ``"lerobot"`` for a ``droid:`` /
    ``lerobot:`` prefix, a DROID trajectory directory (``trajectory.h5``, ``metadata_*.json``, ``recordings/``) or a
    LeRobot dataset root (``meta/info.json``); ``"files"`` otherwise (trajectory files or folders of them)."""
    prefix, sep, rest = entry.partition(":")
    if sep and prefix in SOURCE_PREFIXES:
        if not rest:
            raise ConfigError(f"data.trajectories entry {entry!r} names no path after {prefix}:")
        return prefix, rest
    p = Path(entry)
    if p.is_dir():
        if (p / "meta" / "info.json").is_file():
            return "lerobot", entry
        if (p / "trajectory.h5").is_file() and (p / "recordings").is_dir() and any(p.glob("metadata_*.json")):
            return "droid", entry
    return "files", entry


def trajectory_dataset(cfg: ACTrainConfig) -> TrajectoryClipDataset:
    """Pixel clips of ``cfg.data.trajectories`` (one kind of source, see :func:`source_kind`); their widths are
    those the predictor takes."""
    d = cfg.data
    if not d.trajectories:
        raise ConfigError("data.trajectories is empty")
    sources = [source_kind(entry) for entry in d.trajectories]
    kinds = sorted({kind for kind, _ in sources})
    if len(kinds) > 1:
        firsts = ", ".join(
            next(e for e, (k, _) in zip(d.trajectories, sources, strict=True) if k == kind) for kind in kinds
        )
        raise UserError(f"data.trajectories mixes kinds of source {kinds} (e.g. {firsts}); a run reads one kind")
    kind, paths = kinds[0], [path for _, path in sources]
    common = {"resolution": d.resolution, "transform": d.transform, **_sampling(cfg)}
    if kind == "droid":
        from vjepa2.data.droid import DroidDataset

        return DroidDataset(paths, camera=d.camera or "left", **common)
    if kind == "lerobot":
        from vjepa2.data.lerobot import LeRobotDataset

        return LeRobotDataset(paths, camera=d.camera, **common)
    if d.camera is not None:
        raise ConfigError(
            f"data.camera={d.camera!r} is for droid: and lerobot: sources; trajectory files hold one view"
        )
    return TrajectoryClipDataset(paths, **common)


def _sampling(cfg: ACTrainConfig) -> dict:
    d = cfg.data
    return {"frames": d.frames, "fps": d.fps if d.frame_step is None else None, "frame_step": d.frame_step}


def data_dims(cfg: ACTrainConfig, data: TrajectoryClipDataset) -> dict[str, int]:
    """The predictor's ``action_dim`` / ``state_dim`` from the data; ValueError when ``model.*`` says otherwise."""
    found = {"action_dim": data.action_dim, "state_dim": data.state_dim}
    for key, value in found.items():
        given = getattr(cfg.model, key)
        if given is not None and given != value:
            raise UserError(
                f"model.{key}={given}, but the trajectories give {value} ({data.paths[0]}: per-step "
                f"{data.dims_at(0)}, frame step {data.step_of(0)}); set model.{key}={value} or leave it unset"
            )
    return found


def ac_dataset(
    cfg: ACTrainConfig, world: dist_utils.DistWorld, encoder, pixels: TrajectoryClipDataset | None = None
) -> TrajectoryClipDataset:
    """Feature clips from the cache (built by rank 0 on first use) or pixel clips (``pixels``, if already built)."""
    d = cfg.data
    pixels = pixels if pixels is not None else trajectory_dataset(cfg)
    if not d.cache_features:
        return pixels
    name = f"{cfg.model.encoder}-{encoder_digest(encoder)}-{d.resolution}-{d.transform}-{cfg.run.dtype}"
    cache = Path(cfg.run.out) / "features" / name
    if world.is_main:
        build_feature_cache(
            encoder, pixels.paths, cache, d.resolution, d.transform, cfg.run.dtype, cfg.run.progress, reader=pixels
        )
    if world.distributed:
        torch.distributed.barrier()
    return FeatureClipDataset(pixels.paths, cache, reader=pixels, seed=cfg.run.seed, **_sampling(cfg))


def ac_batches(
    cfg: ACTrainConfig,
    world: dist_utils.DistWorld,
    encoder,
    start_step: int = 0,
    pixels: TrajectoryClipDataset | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless ``(features [b, T, HW, D], actions [b, T-1, A], states [b, T, S])`` for this rank (A, S: the
    dataset's ``action_dim`` / ``state_dim``); ``pixels`` is :func:`trajectory_dataset`, if already built."""
    d = cfg.data
    if d.batch_size % world.size:
        raise UserError(f"data.batch_size={d.batch_size} is not divisible by the {world.size} processes")
    dataset = ac_dataset(cfg, world, encoder, pixels)
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
