"""Frozen-encoder features of whole trajectories, cached on disk so that world-model training skips the encoder.

Every frame is encoded alone as a duplicated 2-frame tubelet and layer-normed (the official V-JEPA 2-AC
``normalize_reps``), once per trajectory, and stored as float16 ``[T, HW, D]`` under a folder named after the
encoder. :class:`FeatureClipDataset` then samples clips exactly like :class:`TrajectoryClipDataset`, returning
features instead of pixels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vjepa2.data.trajectories import load_trajectory, read_arrays
from vjepa2.data.trajectory_dataset import StepData, TrajectoryClipDataset
from vjepa2.data.transforms import make_clip_transform
from vjepa2.models import VisionTransformer
from vjepa2.models.encode import encode_frames


def _cache_name(path: str) -> str:
    """The cache file of a trajectory: keyed on its resolved path, size and modification time, so a file that is
    replaced (same name, new content) is encoded again."""
    p = Path(path).resolve()
    st = p.stat()
    return hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16] + ".npy"


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
) -> Path:
    """Encode every trajectory in ``paths`` not yet in ``cache_dir``; returns ``cache_dir``."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fn = make_clip_transform(transform, resolution)
    rng = np.random.default_rng(0)  # the named transforms are deterministic; the rng is unused
    for path in tqdm(paths, desc="encode trajectories", disable=not progress):
        target = cache_dir / _cache_name(path)
        if target.exists():
            continue
        frames = fn(torch.from_numpy(load_trajectory(path).frames), rng)  # [3, T, res, res]
        feats = encode_trajectory(encoder, frames, dtype).to(torch.float16).numpy()
        tmp = target.with_suffix(".tmp.npy")
        np.save(tmp, feats)
        tmp.replace(target)
    return cache_dir


class FeatureClipDataset(TrajectoryClipDataset):
    """:class:`TrajectoryClipDataset` whose ``clip`` is cached features ``[F, HW, D]`` (float32) instead of pixels."""

    def __init__(self, sources, cache_dir: str | Path, **kwargs) -> None:
        self.cache_dir = Path(cache_dir)
        super().__init__(sources, transform=None, **kwargs)

    def read_steps(self, path: str, indices: np.ndarray, rng: np.random.Generator) -> StepData:
        feats = np.load(self.cache_dir / _cache_name(path), mmap_mode="r")[indices].astype(np.float32)
        arrays, _ = read_arrays(Path(path), ("states", "extrinsics"), indices)
        return StepData(feats, arrays["states"], arrays.get("extrinsics"))
