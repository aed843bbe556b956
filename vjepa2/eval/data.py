"""Labelled probe data and how each item becomes encoder inputs.

A source is named by one string:

- ``list.csv``: the official data-list format, ``path label`` per line (integer labels);
- a folder with one sub-folder per class (``root/<class>/*.mp4|*.jpg ...``), classes in sorted order;
- ``synthetic:TASK:SPLIT:N``: the first ``N`` clips of a split (``val`` or ``test``; pretraining uses ``train``) of
  the built-in synthetic world, labelled by ``TASK`` (``direction``, ``appearance``, ``count``, ``next_event``...);
- ``digits:SPLIT[:N]``: scikit-learn's handwritten digits (real 8x8 scans, 1797 images, a fixed 1000 / 797
  ``train`` / ``test`` split) rendered as clips of repeated frames, 10 classes.

Images always become clips by repeating the frame (as the official image probes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from vjepa2.data.datasets import list_samples, read_csv_list
from vjepa2.data.digits import digit_images
from vjepa2.data.randaugment import ProbeAugmentConfig, probe_augment
from vjepa2.data.synthetic import SyntheticWorld, WorldConfig, split_seeds
from vjepa2.data.transforms import EVAL_RESIZE_RATIO
from vjepa2.data.video import list_media
from vjepa2.errors import UserError
from vjepa2.eval.cache import cache_key
from vjepa2.eval.views import clip_views, read_segments

# Scene distributions of the synthetic probe tasks: a motion task needs one moving object, an appearance task one
# object whose shape and colour are the label.
SYNTHETIC_WORLDS: dict[str, dict] = {"direction": {"one_mover_prob": 1.0}, "appearance": {"max_objects": 1}}


@dataclass(frozen=True)
class ClipSpec:
    """How a video becomes encoder inputs: ``segments`` clips of ``frames`` frames, ``views`` crops each.

    Frames are sampled every ``frame_step`` source frames when it is set, else at ``fps`` (the official rule).
    """

    frames: int = 16
    fps: float | None = 4.0
    frame_step: int | None = None
    resolution: int = 256
    segments: int = 1
    views: int = 1
    resize_ratio: float = EVAL_RESIZE_RATIO  # single view: short side to resolution * ratio, then centre crop

    def __post_init__(self) -> None:
        if self.frames < 1 or self.segments < 1 or self.views < 1 or self.resolution < 1:
            raise UserError(f"ClipSpec needs positive frames, segments, views and resolution, got {self}")
        if self.fps is None and self.frame_step is None:
            raise UserError("ClipSpec needs fps or frame_step (frame_step wins when both are set)")


class Source(Protocol):
    """Labelled videos: ``labels [N]``, class names, and item ``i`` as uint8 ``[S, T, H, W, 3]``."""

    name: str
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int: ...

    def segments(self, i: int, spec: ClipSpec) -> torch.Tensor: ...


class PathSource:
    """Unlabelled videos and images (labels -1) of a CSV list, a folder (recursive), a glob or one file."""

    def __init__(self, spec: str) -> None:
        self.paths = [p for p, _ in list_samples(spec)]
        if not self.paths:
            raise UserError(f"{spec}: no video or image files")
        self.labels = torch.full((len(self.paths),), -1, dtype=torch.long)
        self.classes: list[str] = []
        self.name = f"{spec}:{cache_key(paths=self.paths)}"

    def __len__(self) -> int:
        return len(self.paths)

    def segments(self, i: int, spec: ClipSpec) -> torch.Tensor:
        return read_segments(self.paths[i], spec.frames, spec.segments, spec.fps, spec.frame_step)


class FileSource(PathSource):
    """Videos and images from a CSV data list (``path label``) or a folder with one sub-folder per class.

    ``classes`` fixes the class order of a folder (a val folder must use the train folder's classes).
    """

    def __init__(self, spec: str, classes: list[str] | None = None) -> None:
        path = Path(spec)
        if spec.lower().endswith(".csv"):
            if not path.is_file():
                raise FileNotFoundError(f"data list not found: {spec}")
            samples = read_csv_list(path)
            bad = [p for p, label in samples if label < 0]
            if bad:
                raise UserError(f"{spec}: {len(bad)} lines without an integer label (first: {bad[0]})")
            self.paths = [p for p, _ in samples]
            labels = [label for _, label in samples]
            self.classes = [str(c) for c in range(max(labels, default=-1) + 1)]
        elif path.is_dir():
            found = sorted(d.name for d in path.iterdir() if d.is_dir())
            unknown = sorted(set(found) - set(classes or found))
            if unknown:
                raise UserError(f"{spec}: class folders {unknown} are not among the training classes {classes}")
            self.classes = list(classes or found)
            pairs = [(str(f), c) for c, name in enumerate(self.classes) for f in list_media(path / name)]
            self.paths, labels = [p for p, _ in pairs], [c for _, c in pairs]
        else:
            raise FileNotFoundError(
                f"probe data {spec!r} is not a .csv list, a class folder, synthetic:... or digits:..."
            )
        if not self.paths:
            raise UserError(f"probe data {spec!r} has no labelled video or image files (expected class sub-folders)")
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.name = f"{spec}:{cache_key(paths=self.paths, labels=labels)}"


class SyntheticSource:
    """Clips of the synthetic world, rendered at the clip resolution, labelled by one task."""

    def __init__(self, task: str, split: str, n: int, resolution: int = 64, frames: int = 16, **world: object) -> None:
        cfg = WorldConfig(resolution=resolution, frames=frames, **{**SYNTHETIC_WORLDS.get(task, {}), **world})
        self.name = f"synthetic:{task}:{split}:{n}:{cfg}"
        self.world, self.seeds = SyntheticWorld(cfg), split_seeds(split, n)
        scenes = [self.world.scene(s).labels for s in self.seeds]
        if task not in scenes[0]:
            raise UserError(f"{self.name}: unknown synthetic task {task!r}; tasks: {sorted(scenes[0])}")
        self.labels = torch.tensor([int(s[task]) for s in scenes], dtype=torch.long)
        self.classes = [str(c) for c in range(_num_classes(task, cfg, self.labels))]

    def __len__(self) -> int:
        return len(self.seeds)

    def segments(self, i: int, spec: ClipSpec) -> torch.Tensor:
        frames, _ = self.world.render_clip(int(self.seeds[i]))  # [S * T, H, W, 3]
        if len(frames) != spec.frames * spec.segments:
            raise UserError(f"{self.name} renders {len(frames)} frames; {spec} needs {spec.frames * spec.segments}")
        return torch.from_numpy(frames).unflatten(0, (spec.segments, spec.frames))


def _num_classes(task: str, cfg: WorldConfig, labels: torch.Tensor) -> int:
    from vjepa2.data.synthetic import COLOURS, NEXT_EVENTS, SHAPES

    known = {"direction": cfg.num_directions, "appearance": len(SHAPES) * len(COLOURS), "next_event": len(NEXT_EVENTS)}
    return known.get(task, int(labels.max()) + 1)


class DigitsSource:
    """scikit-learn's 8x8 handwritten digits, upscaled (nearest) to ``size`` px RGB, as repeated-frame clips."""

    def __init__(self, split: str, n: int | None = None, size: int = 64) -> None:
        if split not in ("train", "test"):
            raise UserError(f"digits split must be 'train' or 'test', got {split!r}")
        images, labels = digit_images(split)
        images, labels = (images[:n], labels[:n]) if n else (images, labels)
        self.name = f"digits:{split}:{len(labels)}:{size}"
        scale = size // 8
        self.images = torch.from_numpy(np.ascontiguousarray(images.repeat(scale, 1).repeat(scale, 2)))  # [N, s, s]
        self.labels = torch.from_numpy(labels).long()
        self.classes = [str(c) for c in range(10)]

    def __len__(self) -> int:
        return len(self.labels)

    def segments(self, i: int, spec: ClipSpec) -> torch.Tensor:
        rgb = self.images[i][..., None].expand(-1, -1, 3)  # [s, s, 3]
        return rgb.expand(spec.segments, spec.frames, -1, -1, -1)


def load_source(spec: str, clip: ClipSpec = ClipSpec(), classes: list[str] | None = None) -> Source:
    """The probe data named by ``spec`` (see the module docstring); synthetic scenes are rendered as ``clip`` asks.

    ``classes``: the class order of a class-folder source (pass the training source's ``classes`` for val data).
    """
    kind, _, rest = spec.partition(":")
    if kind == "synthetic" and not os.path.exists(spec):
        parts = rest.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise UserError(f"synthetic probe data must be synthetic:TASK:SPLIT:N, got {spec!r}")
        return SyntheticSource(parts[0], parts[1], int(parts[2]), clip.resolution, clip.frames * clip.segments)
    if kind == "digits" and not os.path.exists(spec):
        split, _, n = rest.partition(":")
        return DigitsSource(split, int(n) if n else None)
    return FileSource(spec, classes)


class ClipDataset(torch.utils.data.Dataset):
    """Item ``i`` of a source as encoder inputs ``[S * V, 3, T, r, r]`` (segment-major)."""

    def __init__(self, source: Source, spec: ClipSpec) -> None:
        self.source, self.spec = source, spec

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> torch.Tensor:
        s = self.spec
        return clip_views(self.source.segments(i, s), s.resolution, s.views, s.resize_ratio)


class AugmentedClipDataset(torch.utils.data.Dataset):
    """Item ``i`` of a source as augmented training inputs ``[S, 3, T, r, r]`` (one view per segment, official).

    The draws of item ``i`` in ``epoch`` come from ``numpy.random.default_rng((aug.seed, epoch, i))``: the same in
    any worker, different every epoch.
    """

    def __init__(self, source: Source, spec: ClipSpec, aug: ProbeAugmentConfig, epoch: int = 0) -> None:
        self.source, self.spec, self.aug, self.epoch = source, spec, aug, epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng((self.aug.seed, self.epoch, i))
        segs = self.source.segments(i, self.spec)  # [S, T, H, W, 3]
        return torch.stack([probe_augment(seg, self.spec.resolution, self.aug, rng) for seg in segs])


def clip_batches(source: Source, spec: ClipSpec, batch_size: int = 8, num_workers: int = 0):
    """A loader of ``[b * S * V, 3, T, r, r]`` batches over the whole source, in order."""
    return torch.utils.data.DataLoader(
        ClipDataset(source, spec), batch_size=batch_size, num_workers=num_workers, collate_fn=torch.cat
    )
