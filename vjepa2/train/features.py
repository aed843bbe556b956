"""Frozen-encoder features of whole trajectories, cached on disk so that world-model training skips the encoder.

Every frame is encoded alone as a duplicated 2-frame tubelet and layer-normed (the official V-JEPA 2-AC
``normalize_reps``), once per trajectory, and stored as float16 ``[T, HW, D]`` under a folder named after the
encoder. :class:`FeatureClipDataset` then samples clips exactly like :class:`TrajectoryClipDataset`, returning
features instead of pixels. Trajectories in other layouts (DROID, LeRobot) are read through their pixel dataset, the
``reader``: its ``read_frames`` / ``read_states`` / ``read_actions`` hooks, and its ``stamp`` keys the cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vjepa2.data.trajectories import StepDims, read_arrays
from vjepa2.data.trajectory_dataset import StepData, TrajectoryClipDataset, file_stamp
from vjepa2.data.transforms import make_clip_transform
from vjepa2.models import VisionTransformer
from vjepa2.models.encode import encode_frames


def _cache_name(path: str, reader: TrajectoryClipDataset | None = None) -> str:
    """The cache file of a trajectory: keyed on ``reader.stamp(path)`` (for files: their resolved path, size and
    modification time), so a trajectory that is replaced (same name, new content) is encoded again."""
    stamp = file_stamp(path) if reader is None else reader.stamp(path)
    return hashlib.sha1(stamp.encode()).hexdigest()[:16] + ".npy"


def encoder_digest(encoder: torch.nn.Module) -> str:
    """A content hash of the encoder's weights (names, shapes, dtypes and bytes): the feature cache's key."""
    h = hashlib.blake2b(digest_size=8)
    for name, t in sorted(encoder.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def encode_trajectory(encoder: VisionTransformer, frames: torch.Tensor, dtype: str = "bf16", batch: int = 64):
    """Layer-normed per-frame features ``[T, HW, D]`` of normalised frames ``[3, T, H, W]``, ``batch`` at a time."""
    device = next(encoder.parameters()).device
    chunks = [
        encode_frames(encoder, frames[None, :, i : i + batch].to(device), dtype)[0]
        for i in range(0, frames.shape[1], batch)
    ]
    return torch.cat(chunks).cpu()


def build_feature_cache(
    encoder: VisionTransformer,
    paths: list[str],
    cache_dir: str | Path,
    resolution: int,
    transform: str = "resize",
    dtype: str = "bf16",
    progress: bool = True,
    reader: TrajectoryClipDataset | None = None,
) -> Path:
    """Encode every trajectory in ``paths`` not yet in ``cache_dir`` (read by ``reader``, by default as trajectory
    files); returns ``cache_dir``."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fn = make_clip_transform(transform, resolution)
    rng = np.random.default_rng(0)  # the named transforms are deterministic; the rng is unused
    for path in tqdm(paths, desc="encode trajectories", disable=not progress):
        target = cache_dir / _cache_name(path, reader)
        if target.exists():
            continue
        raw = (
            reader.read_frames(path) if reader is not None else read_arrays(Path(path), ("frames",), None)[0]["frames"]
        )
        frames = fn(torch.from_numpy(raw), rng)  # [3, T, res, res]
        feats = encode_trajectory(encoder, frames, dtype).to(torch.float16).numpy()
        tmp = target.with_suffix(".tmp.npy")
        np.save(tmp, feats)
        tmp.replace(target)
    return cache_dir


class FeatureClipDataset(TrajectoryClipDataset):
    """:class:`TrajectoryClipDataset` whose ``clip`` is cached features ``[F, HW, D]`` (float32) instead of pixels.

    Args:
        sources: trajectory files or folders; with a ``reader``, its ``paths``.
        cache_dir: the folder :func:`build_feature_cache` wrote.
        reader: the pixel dataset of other layouts (DROID, LeRobot), whose hooks read the states and actions.
        **kwargs: the sampling arguments of :class:`TrajectoryClipDataset` (not ``transform``).
    """

    def __init__(self, sources, cache_dir: str | Path, reader: TrajectoryClipDataset | None = None, **kwargs) -> None:
        self.cache_dir, self.reader = Path(cache_dir), reader
        if reader is not None:
            self.stored_actions = reader.stored_actions
        super().__init__(sources, transform=None, **kwargs)

    def list_sources(self, sources) -> list[str]:
        return list(sources) if self.reader is not None else super().list_sources(sources)

    def dims_of(self, path: str) -> StepDims:
        return self.reader.dims_of(path) if self.reader is not None else super().dims_of(path)

    def scan(self, path: str) -> tuple[int, float]:
        return self.reader.scan(path) if self.reader is not None else super().scan(path)

    def read_actions(self, path: str, indices: np.ndarray) -> np.ndarray:
        return (
            self.reader.read_actions(path, indices) if self.reader is not None else super().read_actions(path, indices)
        )

    def read_steps(self, path: str, indices: np.ndarray, rng: np.random.Generator) -> StepData:
        feats = np.load(self.cache_dir / _cache_name(path, self.reader), mmap_mode="r")[indices].astype(np.float32)
        read = self.reader.read_states if self.reader is not None else super().read_states
        return StepData(feats, *read(path, indices))
