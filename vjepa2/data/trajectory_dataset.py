"""Clips of robot trajectories for stage-2 training, sampled as the official DROID loader (``droid.py``).

:class:`TrajectoryClipDataset` samples clips as the official DROID loader (``app/vjepa_droid/droid.py``):
``step = ceil(video_fps / fps)`` (15 Hz at 4 fps -> 4), a clip spans ``frames * step`` steps and starts at a random
step in ``[0, T - frames * step)``, the frames are ``arange(start, start + frames * step, step)``, the states and
extrinsics are read at the same indices. The actions of pose trajectories (7-D states and actions, the default) are
``poses_to_diffs`` of those states, as official; those of other trajectories (declared dims, e.g. Two-Rooms, Push-T)
are the stored actions, the ``step`` of them between two sampled frames concatenated (DINO-WM's frameskip: a clip
action is ``step * action_dim`` wide).
Frames go through a named transform of :mod:`.transforms` (``"droid"`` by default).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from vjepa2.data.clip_sampling import clip_frame_step, sample_clip_indices
from vjepa2.data.poses import poses_to_diffs, to_camera_frame
from vjepa2.data.sampler import DrawKey
from vjepa2.data.trajectories import (
    POSE_DIM,
    TRAJECTORY_SUFFIXES,
    SkippedTrajectoryWarning,
    StepDims,
    TrajectoryFormatError,
    check_shapes,
    declared_dims,
    read_arrays,
    read_metadata,
    read_shapes,
)
from vjepa2.data.transforms import ClipTransform, make_clip_transform
from vjepa2.data.video import VideoReadError
from vjepa2.errors import UserError


class TrajectoryClip(NamedTuple):
    """One dataset item (``default_collate`` stacks each field).

    Attributes:
        clip: float32 ``[3, F, res, res]`` normalised (uint8 ``[F, H, W, 3]`` with no transform).
        actions: float32 ``[F - 1, A]``: ``poses_to_diffs(states)`` (A = 7) for pose trajectories, else the
            ``step`` stored actions between consecutive frames concatenated (A = ``step * action_dim``).
        states: float32 ``[F, S]`` at the clip's frames (S = 7 for poses).
        extrinsics: float32 ``[F, 6]``, zeros when the trajectory has none.
        indices: int64 ``[F]`` step indices of the frames in the trajectory.
        index: the trajectory loaded (a replacement's after a read failure).
    """

    clip: torch.Tensor
    actions: torch.Tensor
    states: torch.Tensor
    extrinsics: torch.Tensor
    indices: torch.Tensor
    index: int


class StepData(NamedTuple):
    """Per-step arrays read at a clip's indices: frames uint8 ``[F, H, W, 3]``, states ``[F, S]``, extrinsics."""

    frames: np.ndarray
    states: np.ndarray
    extrinsics: np.ndarray | None


def file_stamp(path: str | os.PathLike) -> str:
    """``"<resolved path>|<size>|<mtime ns>"`` of a file: changes when the file is replaced."""
    p = Path(path).resolve()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}"


def stack_actions(actions: np.ndarray, n: int) -> np.ndarray:
    """Consecutive stored actions ``[n * k, A]`` -> ``[n, k * A]`` (row ``i``: actions ``i*k .. i*k + k - 1``)."""
    return np.asarray(actions).reshape(n, -1)


class TrajectoryClipDataset(Dataset):
    """Clips of robot trajectories with their actions and states, sampled as the official DROID loader.

    Trajectories too short for one clip, or unreadable, are left out at construction (one
    :class:`SkippedTrajectoryWarning` each kind; counts in ``num_too_short`` and ``num_unreadable``). Each item's
    randomness comes from a generator seeded by ``(seed, epoch, position, index)`` (see :class:`DrawKey`).
    Trajectories declaring other dims than 7-D poses (:class:`StepDims`) must store their ``actions``;
    :attr:`state_dim` and :attr:`action_dim` give the sizes of a batch (all trajectories must agree).

    Args:
        sources: trajectory files, folders searched recursively for them, or a list of both.
        frames: frames per clip (F).
        fps: target rate; ``step = ceil(trajectory fps / fps)``.
        frame_step: explicit step between frames; overrides ``fps`` when given.
        resolution: output side of the named transforms.
        transform: ``"droid"``, ``"resize"``, ``"center"``, a ``(frames, rng)`` callable or None; see
            :func:`make_clip_transform`.
        random_start: draw the clip's start (training); False takes the first clip (evaluation).
        camera_frame: express states in the camera frame before taking actions (official option, off; poses only).
        seed: base seed of the per-item generators.
        max_retries: other trajectories tried when one fails to read before the item raises.
    """

    stored_actions: bool = False  # True: clip actions are always the stored ones, even for 7-D states (no pose diffs)

    def __init__(
        self,
        sources: str | os.PathLike | Sequence[str | os.PathLike],
        frames: int = 8,
        fps: float | None = 4.0,
        frame_step: int | None = None,
        resolution: int = 256,
        transform: str | ClipTransform | None = "droid",
        random_start: bool = True,
        camera_frame: bool = False,
        seed: int = 0,
        max_retries: int = 10,
    ) -> None:
        if frames < 2 or max_retries < 0:
            raise UserError(f"need frames >= 2 and max_retries >= 0, got {frames}, {max_retries}")
        clip_frame_step(1.0, fps, frame_step)  # validate the sampling arguments early
        self.frames, self.fps, self.frame_step = frames, fps, frame_step
        self.transform = make_clip_transform(transform, resolution)
        self.random_start, self.camera_frame = random_start, camera_frame
        self.seed, self.max_retries = seed, max_retries
        self._index(self.list_sources(sources))

    # -- subclass hooks: where trajectories are, their (length, fps) and dims, and reading steps and actions

    def list_sources(self, sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
        """Trajectory files of ``sources`` (files kept as given, folders searched recursively, sorted)."""
        sources = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        paths: list[str] = []
        for source in sources:
            p = Path(source)
            if p.is_dir():
                paths += sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in TRAJECTORY_SUFFIXES)
            elif p.is_file():
                paths.append(str(p))
            else:
                raise FileNotFoundError(f"trajectory source not found: {str(p)!r}")
        return paths

    def dims_of(self, path: str) -> StepDims:
        """The dims a trajectory file declares; other layouts (e.g. DROID directories) hold 7-D poses."""
        return declared_dims(read_metadata(path)) if Path(path).suffix.lower() in TRAJECTORY_SUFFIXES else StepDims()

    def scan(self, path: str) -> tuple[int, float]:
        """``(T, fps)`` of one trajectory, validated without reading its frames."""
        shapes, fps = read_shapes(path)
        dims = self.dims_of(path)
        length = check_shapes(shapes, path, *dims)
        if not dims.poses and "actions" not in shapes:
            raise TrajectoryFormatError(path, f"is missing ({dims}: not poses, so its actions are read)", "actions")
        return length, fps

    def read_steps(self, path: str, indices: np.ndarray, rng: np.random.Generator) -> StepData:
        """Frames, states and extrinsics of one trajectory at ``indices``."""
        arrays, _ = read_arrays(Path(path), ("frames", "states", "extrinsics"), indices)
        return StepData(arrays["frames"], arrays["states"], arrays.get("extrinsics"))

    def read_actions(self, path: str, indices: np.ndarray) -> np.ndarray:
        """The stored actions between consecutive ``indices`` (evenly spaced), stacked: ``[F - 1, step * A]``."""
        arrays, _ = read_arrays(Path(path), ("actions",), np.arange(indices[0], indices[-1]))
        return stack_actions(arrays["actions"], len(indices) - 1)

    # -- hooks of the feature cache (:mod:`vjepa2.train.features`): whole videos, states alone, a content stamp

    def read_frames(self, path: str) -> np.ndarray:
        """Every frame of one trajectory, uint8 ``[T, H, W, 3]``."""
        return read_arrays(Path(path), ("frames",), None)[0]["frames"]

    def read_states(self, path: str, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """States ``[F, S]`` and extrinsics ``[F, 6]`` (None when absent) at ``indices``, without the frames."""
        arrays, _ = read_arrays(Path(path), ("states", "extrinsics"), indices)
        return arrays["states"], arrays.get("extrinsics")

    def stamp(self, path: str) -> str:
        """What identifies the content of one trajectory (here its file's resolved path, size and mtime)."""
        return file_stamp(path)

    # -- indexing

    def _index(self, paths: list[str]) -> None:
        kept, lengths, rates, dims, short, bad = [], [], [], [], [], []
        for path in paths:
            try:
                length, rate = self.scan(path)
                step = clip_frame_step(rate, self.fps, self.frame_step)
                dim = self.dims_of(path)
            except (OSError, ValueError, KeyError) as e:
                bad.append(f"{path} ({e})")
                continue
            if length < self.frames * step:
                short.append(f"{path} (T={length} < {self.frames}x{step})")
                continue
            kept.append(path)
            lengths.append(length)
            rates.append(rate)
            dims.append(dim)
        self.paths, self.lengths, self.rates = kept, np.array(lengths, np.int64), np.array(rates, np.float64)
        self.dims = np.array(dims, np.int64).reshape(-1, 2)  # [N, (state_dim, action_dim)] per step
        self.num_too_short, self.num_unreadable = len(short), len(bad)
        for what, items in (("too short for one clip", short), ("unreadable", bad)):
            if items:
                shown = "; ".join(items[:3]) + (f"; ... ({len(items) - 3} more)" if len(items) > 3 else "")
                warnings.warn(f"skipped {len(items)} trajectories {what}: {shown}", SkippedTrajectoryWarning, 3)
        if not kept:
            raise UserError(f"no usable trajectory among {len(paths)} found (see the warnings)")

    def __len__(self) -> int:
        return len(self.paths)

    def step_of(self, index: int) -> int:
        """Steps between the frames of a clip from trajectory ``index``."""
        return clip_frame_step(float(self.rates[index]), self.fps, self.frame_step)

    def dims_at(self, index: int) -> StepDims:
        """The per-step dims of trajectory ``index``."""
        return StepDims(*map(int, self.dims[index]))

    @property
    def state_dim(self) -> int:
        """Width S of the items' states, shared by every trajectory (ValueError naming two that differ)."""
        return self._shared("state_dim", [int(s) for s in self.dims[:, 0]])

    def pose_actions(self, index: int) -> bool:
        """Whether the clip actions of trajectory ``index`` are ``poses_to_diffs`` of its (7-D pose) states."""
        return not self.stored_actions and self.dims_at(index).poses

    def clip_action_dim(self, index: int) -> int:
        """Width of a clip action of trajectory ``index``: 7 for poses, ``step * action_dim`` of stored actions."""
        return POSE_DIM if self.pose_actions(index) else self.step_of(index) * self.dims_at(index).action_dim

    @property
    def action_dim(self) -> int:
        """Width A of the items' actions, shared by every trajectory: 7 for poses, ``step * action_dim`` otherwise."""
        return self._shared("action_dim", [self.clip_action_dim(i) for i in range(len(self))])

    def _shared(self, what: str, values: list[int]) -> int:
        odd = next((i for i, value in enumerate(values) if value != values[0]), None)
        if odd is not None:
            raise UserError(
                f"trajectories give different {what}s: {self.paths[0]} {values[0]} ({self.dims_at(0)}, step "
                f"{self.step_of(0)}), {self.paths[odd]} {values[odd]} ({self.dims_at(odd)}, step {self.step_of(odd)}); "
                "a batch needs one kind of trajectory at one frame step"
            )
        return values[0]

    def __getitem__(self, key: int | DrawKey) -> TrajectoryClip:
        """Load one clip; ``key`` is a plain index or a :class:`DrawKey`. A failed read warns and retries another."""
        index, epoch, position = key if isinstance(key, tuple) else (int(key), 0, int(key))
        rng = np.random.default_rng([self.seed, epoch, position, index])
        for _ in range(self.max_retries + 1):
            try:
                return self._load(index, rng)
            except (OSError, KeyError, TrajectoryFormatError, VideoReadError) as err:
                warnings.warn(f"skipping unreadable trajectory {self.paths[index]}: {err}", SkippedTrajectoryWarning, 2)
                index = int(rng.integers(len(self)))
        raise RuntimeError(f"{self.max_retries + 1} trajectories in a row failed to read (see the warnings)")

    def _load(self, index: int, rng: np.random.Generator) -> TrajectoryClip:
        step, path, poses = self.step_of(index), self.paths[index], self.pose_actions(index)
        indices = sample_clip_indices(int(self.lengths[index]), self.frames, step, rng if self.random_start else None)
        data = self.read_steps(path, indices, rng)
        states = np.asarray(data.states, dtype=np.float64)
        extrinsics = np.zeros((len(indices), 6)) if data.extrinsics is None else np.asarray(data.extrinsics, np.float64)
        if self.camera_frame:
            if data.extrinsics is None or not poses:
                raise UserError(f"{path}: camera_frame=True needs 7-D pose states and extrinsics")
            states = to_camera_frame(states, extrinsics)
        actions = poses_to_diffs(states) if poses else self.read_actions(path, indices)
        frames = torch.from_numpy(np.ascontiguousarray(data.frames))
        clip = frames if self.transform is None else self.transform(frames, rng)
        f32 = lambda x: torch.from_numpy(np.asarray(x, dtype=np.float32))  # noqa: E731
        return TrajectoryClip(clip, f32(actions), f32(states), f32(extrinsics), torch.from_numpy(indices), index)
