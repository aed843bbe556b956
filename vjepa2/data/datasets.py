"""Pretraining clips: data lists, a weighted mixture of datasets, unreadable-file handling and the loader.

Follows the official ``src/datasets/video_dataset.py``:

- a source is a CSV data list (``path [label]`` per line, space-delimited, no header, ``::`` as the fallback
  delimiter; relative paths are resolved against the CSV's folder), a folder (searched recursively for videos and
  images), a glob pattern or a single media file;
- several sources form one dataset; with per-source weights ``w_d``, each sample is drawn with probability
  proportional to ``w_d / N_d`` (:class:`~vjepa2.data.sampler.DistributedWeightedSampler`);
- an image becomes a clip by repeating it ``frames`` times.

Each item's randomness (clip position, crop, flip, replacement draws) comes from a generator seeded by
``(seed, epoch, position in the epoch's draw, index)``, so a run is reproducible whatever the number of workers or
ranks. An unreadable file never stops training: it is reported with a :class:`SkippedFileWarning`, counted in
:attr:`ClipBatch.num_skipped`, and replaced by another random sample; only a data set where nothing reads raises.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vjepa2.data.sampler import DistributedWeightedSampler, DrawKey
from vjepa2.data.transforms import VideoAugment
from vjepa2.data.video import MEDIA_EXTENSIONS, VideoReadError, list_media, read_video
from vjepa2.errors import UserError

Transform = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]
PathLike = str | os.PathLike


class SkippedFileWarning(UserWarning):
    """An unreadable video or image was skipped (the message names the file and the cause)."""


# ---------------------------------------------------------------------------------------------------- data lists


def read_csv_list(path: PathLike) -> list[tuple[str, int]]:
    """Parse a data list: one ``path [label]`` per line, space-delimited, or ``::``-delimited if any line has ``::``.

    Relative paths are resolved against the CSV's folder. A missing label, or one that is not an integer (e.g. a
    caption), becomes -1.

    Returns:
        ``[(path, label), ...]`` in file order.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    double_colon = any("::" in line for line in lines)
    samples, non_int = [], 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("::", 1)] if double_colon else line.split()
        if len(fields) > 2:
            raise UserError(f"{path}:{lineno}: expected 'path [label]', got {len(fields)} fields (try '::')")
        label = _int_or_none(fields[1]) if len(fields) == 2 else -1
        if label is None:
            label, non_int = -1, non_int + 1
        samples.append((os.path.join(path.parent, os.path.expanduser(fields[0])), label))
    if non_int:
        warnings.warn(f"{path}: {non_int} non-integer labels were replaced by -1", stacklevel=2)
    return samples


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def list_samples(source: PathLike) -> list[tuple[str, int]]:
    """Samples ``[(path, label), ...]`` of a CSV list, a folder, a glob pattern or a single media file.

    Folder and glob samples are unlabelled (-1) and sorted; only video and image extensions are kept.

    Raises:
        FileNotFoundError: the source does not exist.
    """
    text = os.fspath(source)
    if text.lower().endswith(".csv"):
        if not os.path.isfile(text):
            raise FileNotFoundError(f"data list not found: {text}")
        return read_csv_list(text)
    if os.path.isdir(text):
        skipped: list[Path] = []
        files = list_media(text, skipped)
        if skipped:
            msg = f"{text}: {len(skipped)} entries are not regular files: {skipped[:5]}"
            warnings.warn(SkippedFileWarning(msg), stacklevel=2)
        return [(os.path.abspath(p), -1) for p in files]
    if any(c in text for c in "*?["):
        matches = sorted(p for p in glob.glob(text, recursive=True) if _is_media(p) and os.path.isfile(p))
        return [(os.path.abspath(p), -1) for p in matches]
    if os.path.isfile(text):
        return [(os.path.abspath(text), -1)]
    raise FileNotFoundError(f"data source not found (expected a .csv list, a folder, a glob or a file): {text}")


def _is_media(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in MEDIA_EXTENSIONS


class _PathTable:
    """Many paths packed into one byte buffer, so forked workers share its pages instead of copying them."""

    def __init__(self, paths: Sequence[str]) -> None:
        encoded = [p.encode() for p in paths]
        self.offsets = np.cumsum([0] + [len(b) for b in encoded], dtype=np.int64)
        self.buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.buffer[self.offsets[i] : self.offsets[i + 1]].tobytes().decode()


# ---------------------------------------------------------------------------------------------------- dataset


class ClipItem(NamedTuple):
    """One dataset item.

    Attributes:
        clip: ``[3, T, crop, crop]`` float, or None when this item and all its replacements were unreadable.
        label: integer label, -1 if none.
        index: index of the sample actually loaded (a replacement's index after a failure).
        failures: unreadable files met while producing this item.
    """

    clip: torch.Tensor | None
    label: int
    index: int
    failures: int


class VideoClipDataset(Dataset):
    """Map-style dataset of augmented clips from a weighted mixture of sources.

    Args:
        sources: CSV lists, folders, globs or media files; each is one dataset of the mixture.
        weights: per-source weights ``w_d``; each sample's weight is ``w_d / N_d``. Default: uniform over samples.
        frames: frames per clip (images are repeated this many times).
        fps: target sampling rate (official: 4); set exactly one of ``fps`` and ``frame_step``.
        frame_step: explicit step between source frames.
        transform: ``(uint8 [T, H, W, 3], rng) -> float [3, T, crop, crop]``; default :class:`VideoAugment`.
        seed: base seed of the per-item generators (and of the sampler built by :func:`make_loader`).
        max_retries: replacement samples tried after an unreadable file before the item is given up (clip None).

    Raises:
        ValueError: no sources, a source without samples, or bad arguments.
    """

    def __init__(
        self,
        sources: PathLike | Sequence[PathLike],
        weights: Sequence[float] | None = None,
        frames: int = 16,
        fps: float | None = 4,
        frame_step: int | None = None,
        transform: Transform | None = None,
        seed: int = 0,
        max_retries: int = 10,
    ) -> None:
        sources = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        _check_args(sources, weights, frames, fps, frame_step, seed, max_retries)
        per_source = [list_samples(s) for s in sources]
        for source, samples in zip(sources, per_source, strict=True):
            if not samples:
                raise UserError(f"data source {os.fspath(source)!r} has no video or image files")
        self.sources = [os.fspath(s) for s in sources]
        self.source_sizes = np.array([len(s) for s in per_source], dtype=np.int64)
        sizes = self.source_sizes.astype(np.float64)
        self.source_weights = sizes / sizes.sum() if weights is None else np.asarray(weights, dtype=np.float64)
        self._offsets = np.concatenate([[0], np.cumsum(self.source_sizes)])
        self._paths = _PathTable([p for samples in per_source for p, _ in samples])
        self._labels = np.array([lab for samples in per_source for _, lab in samples], dtype=np.int64)
        self.frames, self.fps, self.frame_step = frames, fps, frame_step
        self.transform = transform if transform is not None else VideoAugment()
        self.seed, self.max_retries = seed, max_retries

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def sample_weights(self) -> np.ndarray:
        """Per-sample weights ``[N]``: ``w_d / N_d`` for every sample of source ``d``."""
        return np.repeat(self.source_weights / self.source_sizes, self.source_sizes)

    def path(self, index: int) -> str:
        return self._paths[index]

    def label(self, index: int) -> int:
        return int(self._labels[index])

    def __getitem__(self, key: int | DrawKey) -> ClipItem:
        """Load one clip; ``key`` is a :class:`DrawKey` from the sampler, or a plain index (epoch 0, position index).

        An unreadable file is warned about (once per file and process, by Python's default warning filter), counted
        in ``failures`` and replaced by a weighted random sample, up to ``max_retries`` times.
        """
        index, epoch, position = key if isinstance(key, tuple) else (int(key), 0, int(key))
        rng = np.random.default_rng([self.seed, epoch, position, index])
        drawn = index
        for attempt in range(self.max_retries + 1):
            try:
                return ClipItem(self._load(index, rng), self.label(index), index, attempt)
            except (VideoReadError, OSError) as err:
                warnings.warn(f"skipping unreadable file {self.path(index)}: {err}", SkippedFileWarning, stacklevel=1)
                index = self._random_index(rng)
        return ClipItem(None, -1, drawn, self.max_retries + 1)

    def _load(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        """``[3, frames, crop, crop]`` clip of sample ``index``; raises on an unreadable file."""
        video = read_video(self.path(index), self.frames, self.fps, self.frame_step, rng)  # [T, H, W, 3] uint8
        clip = self.transform(video, rng)  # an image stays one frame until after augmentation (same params)
        return clip.expand(-1, self.frames, -1, -1) if clip.shape[1] == 1 else clip

    def _random_index(self, rng: np.random.Generator) -> int:
        """A replacement sample drawn with the mixture's weights: a source by ``w_d``, then uniformly inside it."""
        d = int(rng.choice(len(self.source_sizes), p=self.source_weights / self.source_weights.sum()))
        return int(self._offsets[d] + rng.integers(self.source_sizes[d]))


def _check_args(
    sources: list[PathLike],
    weights: Sequence[float] | None,
    frames: int,
    fps: float | None,
    frame_step: int | None,
    seed: int,
    max_retries: int,
) -> None:
    if not sources:
        raise UserError("no data sources given")
    if weights is not None:
        if len(weights) != len(sources):
            raise UserError(f"got {len(weights)} weights for {len(sources)} sources")
        if any(not w >= 0 for w in weights) or sum(weights) <= 0:
            raise UserError(f"source weights must be non-negative with a positive sum, got {list(weights)}")
    if (fps is None) == (frame_step is None):
        raise UserError(f"set exactly one of fps and frame_step, got fps={fps}, frame_step={frame_step}")
    if frames < 1 or max_retries < 0 or seed < 0:
        raise UserError(f"need frames >= 1, max_retries >= 0, seed >= 0; got {frames}, {max_retries}, {seed}")


# ---------------------------------------------------------------------------------------------------- batches


class ClipBatch(NamedTuple):
    """A training batch.

    Attributes:
        clips: ``[B, 3, T, crop, crop]`` float. An item whose every attempt failed is dropped and its slot refilled
            with a copy of a readable item of the same batch, so ``B`` stays fixed (the masks are drawn for ``B``).
        labels: ``[B]`` int64, -1 where unlabelled.
        indices: ``[B]`` int64 sample indices.
        num_skipped: unreadable files met while building this batch (add it to the training metrics).
    """

    clips: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    num_skipped: int


def collate_clips(items: Sequence[ClipItem]) -> ClipBatch:
    """Stack the items, refilling failed ones with readable ones, and count the unreadable files.

    A batch where no item is readable comes out empty (``B = 0``); :class:`ClipLoader` drops it.
    """
    kept = [it for it in items if it.clip is not None]
    if kept:
        kept += [kept[i % len(kept)] for i in range(len(items) - len(kept))]
    clips = torch.stack([it.clip for it in kept]) if kept else torch.empty(0)
    labels = torch.tensor([it.label for it in kept], dtype=torch.int64)
    indices = torch.tensor([it.index for it in kept], dtype=torch.int64)
    return ClipBatch(clips, labels, indices, sum(it.failures for it in items))


class ClipLoader:
    """Iterable over :class:`ClipBatch` that never yields an empty batch and fails loudly on data with nothing readable.

    Empty batches (every item unreadable) are dropped and their skip counts carried into the next batch yielded,
    in this epoch or the next; after ``max_empty_batches`` empty batches in a row, iteration raises ``RuntimeError``.

    Attributes:
        loader: the underlying ``DataLoader``.
        sampler: its :class:`DistributedWeightedSampler`.
    """

    def __init__(self, loader: DataLoader, sampler: DistributedWeightedSampler, max_empty_batches: int = 10) -> None:
        self.loader, self.sampler, self.max_empty_batches = loader, sampler, max_empty_batches
        self._empty = self._carried = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's draw; ``start_batch = k`` skips the ``k`` batches already trained on (resume)."""
        self.sampler.set_epoch(epoch, start_index=start_batch * self.loader.batch_size)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[ClipBatch]:
        for batch in self.loader:
            if len(batch.indices) == 0:
                self._empty, self._carried = self._empty + 1, self._carried + batch.num_skipped
                if self._empty >= self.max_empty_batches:
                    raise RuntimeError(
                        f"{self._empty} batches in a row had no readable clip ({self._carried} unreadable files): "
                        "check the data sources (see the SkippedFileWarning messages)"
                    )
                continue
            yield batch._replace(num_skipped=batch.num_skipped + self._carried)
            self._empty = self._carried = 0


def make_loader(
    dataset: VideoClipDataset,
    batch_size: int,
    num_workers: int = 8,
    rank: int = 0,
    world_size: int = 1,
    samples_per_epoch: int | None = None,
    pin_memory: bool = False,
    max_empty_batches: int = 10,
) -> ClipLoader:
    """Weighted, sharded, multi-worker loader of :class:`ClipBatch` (``drop_last``, persistent workers).

    Args:
        dataset: the clips; its ``seed`` also seeds the sampler.
        batch_size: clips per batch on this rank.
        num_workers: loader processes (0: load in the main process).
        rank: this process's rank.
        world_size: number of processes.
        samples_per_epoch: global draws per epoch (all ranks); default ``len(dataset)``.
        pin_memory: pin batches for faster host-to-GPU copies.
        max_empty_batches: consecutive all-unreadable batches before raising.

    Returns:
        A :class:`ClipLoader`; call ``set_epoch`` before each epoch.
    """
    sampler = DistributedWeightedSampler(
        dataset.sample_weights, samples_per_epoch, rank, world_size, seed=dataset.seed, yield_keys=True
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_clips,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=num_workers > 0,
    )
    return ClipLoader(loader, sampler, max_empty_batches)
