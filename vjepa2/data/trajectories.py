"""Robot trajectories for V-JEPA 2-AC: a one-file-per-trajectory format and a clip dataset sampled as official.

A trajectory file (``.npz``, or ``.h5``/``.hdf5`` when h5py is installed) holds

- ``frames``: uint8 ``[T, H, W, 3]`` RGB, one per robot step;
- ``states``: float32 ``[T, S]``: end-effector poses ``[xyz, extrinsic xyz Euler, gripper]`` (S = 7, see
  :mod:`.poses`) or another env's proprioception;
- ``fps``: float, the frame (and step) rate;
- optional ``extrinsics`` float32 ``[T, 6]`` (camera pose ``[xyz, Euler]``), ``actions`` float32 ``[T - 1, A]`` (as
  executed; for poses the dataset recomputes actions from the states, as official), ``true_states`` float32
  ``[T, K]`` (a simulator's full state, enough to reset it: e.g. block poses that ``states`` does not hold) and
  ``metadata`` (JSON: task, seed, ...).

States and actions are 7-D (Franka poses) unless ``metadata`` declares ``state_dim`` / ``action_dim`` (e.g. 2 for the
Two-Rooms point agent): :class:`StepDims`, :func:`declared_dims`.

:class:`TrajectoryClipDataset` samples clips as the official DROID loader (``app/vjepa_droid/droid.py``):
``step = ceil(video_fps / fps)`` (15 Hz at 4 fps -> 4), a clip spans ``frames * step`` steps and starts at a random
step in ``[0, T - frames * step)``, the frames are ``arange(start, start + frames * step, step)``, the states and
extrinsics are read at the same indices. The actions of pose trajectories (7-D states and actions, the default) are
``poses_to_diffs`` of those states, as official; those of other trajectories (declared dims, e.g. Two-Rooms, Push-T)
are the stored actions, the ``step`` of them between two sampled frames concatenated (DINO-WM's frameskip: a clip
action is ``step * action_dim`` wide). The ``"droid"`` transform reproduces the official one as configured: its
random-resized-crop scale of 1.777 never fits in the frame, so every clip gets the deterministic fallback, a centred
crop with aspect ratio clamped to [0.75, 1.35] (full height x ``round(1.35 H)`` for 16:9 video), resized bilinearly
to ``resolution`` and ImageNet-normalised.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from vjepa2.data.augment import Box, center_box, gaussian_blur, normalize, resized_crop
from vjepa2.data.poses import poses_to_diffs, to_camera_frame
from vjepa2.data.sampler import DrawKey
from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess
from vjepa2.data.video import VideoReadError
from vjepa2.errors import UserError

NPZ_SUFFIXES = frozenset({".npz"})
H5_SUFFIXES = frozenset({".h5", ".hdf5"})
TRAJECTORY_SUFFIXES = NPZ_SUFFIXES | H5_SUFFIXES
OPTIONAL_KEYS = ("extrinsics", "actions", "true_states")
POSE_DIM = 7  # states and actions unless metadata declares state_dim / action_dim
DROID_RATIO = (0.75, 1.35)  # data_aug.random_resize_aspect_ratio of configs/train/vitg16/droid-256px-8f.yaml

ClipTransform = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]
Shapes = Mapping[str, tuple[int, ...]]


class TrajectoryFormatError(UserError):
    """A trajectory file that is unreadable or breaks the format; names the file and, when known, the key."""

    def __init__(self, path: str | os.PathLike | None, problem: str, key: str | None = None) -> None:
        where = f"{os.fspath(path)!r}" if path is not None else "trajectory"
        super().__init__(f"{where}: {f'key {key!r} ' if key else ''}{problem}")
        self.path = Path(path) if path is not None else None
        self.key = key


class SkippedTrajectoryWarning(UserWarning):
    """Trajectories were left out of a dataset (too short for one clip, or unreadable)."""


def import_h5py() -> Any:
    """Import h5py on first use, with an actionable error when it is missing."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError("reading HDF5 (.h5) trajectories needs h5py: `pip install h5py`") from e
    return h5py


# ---------------------------------------------------------------------------------------------------- format


@dataclass
class Trajectory:
    """One robot trajectory.

    Attributes:
        frames: uint8 ``[T, H, W, 3]`` RGB.
        states: float32 ``[T, S]``: poses ``[xyz, extrinsic xyz Euler, gripper]`` (S = 7) or declared states.
        fps: frame (and step) rate in Hz.
        extrinsics: float32 ``[T, 6]`` camera poses, or None.
        actions: float32 ``[T - 1, A]`` executed actions (A = 7 unless declared), or None.
        metadata: JSON-serialisable extras (task name, seed, ``state_dim`` / ``action_dim`` when not 7, ...).
        path: the file it was loaded from, if any.
        true_states: float32 ``[T, K]`` full simulator states, or None.
    """

    frames: np.ndarray
    states: np.ndarray
    fps: float
    extrinsics: np.ndarray | None = None
    actions: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    true_states: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.states)

    def validate(self) -> None:
        """Raise :class:`TrajectoryFormatError` naming the first key with a wrong shape, dtype or value."""
        arrays = {"frames": self.frames, "states": self.states, "fps": np.asarray(self.fps)}
        arrays |= {k: getattr(self, k) for k in OPTIONAL_KEYS if getattr(self, k) is not None}
        check_shapes({k: np.shape(v) for k, v in arrays.items()}, self.path, *declared_dims(self.metadata))
        if np.asarray(self.frames).dtype != np.uint8:
            raise TrajectoryFormatError(self.path, f"must be uint8, got {np.asarray(self.frames).dtype}", "frames")
        if not (math.isfinite(float(self.fps)) and float(self.fps) > 0):
            raise TrajectoryFormatError(self.path, f"must be a positive frame rate, got {self.fps!r}", "fps")

    def save(self, path: str | os.PathLike, compress: bool = True) -> Path:
        """Write with :func:`save_trajectory`; returns the path written."""
        return save_trajectory(
            path, self.frames, self.states, self.fps, extrinsics=self.extrinsics, actions=self.actions,
            metadata=self.metadata, compress=compress, true_states=self.true_states,
        )  # fmt: skip


class StepDims(NamedTuple):
    """Per-step sizes of a trajectory's states and stored actions (7-D Franka poses unless declared)."""

    state_dim: int = POSE_DIM
    action_dim: int = POSE_DIM

    @property
    def poses(self) -> bool:
        """Franka-style poses: clip actions are ``poses_to_diffs`` of the states, not the stored actions."""
        return self.state_dim == POSE_DIM and self.action_dim == POSE_DIM

    def clip_action_dim(self, step: int) -> int:
        """Width of the action between two frames ``step`` steps apart: 7, or ``step`` stored actions stacked."""
        return POSE_DIM if self.poses else step * self.action_dim


def declared_dims(metadata: Mapping[str, Any]) -> StepDims:
    """The ``state_dim`` / ``action_dim`` declared in a trajectory's metadata (7 when absent)."""
    return StepDims(*(int(metadata.get(k, POSE_DIM)) for k in StepDims._fields))


def check_shapes(
    shapes: Shapes, path: str | os.PathLike | None = None, state_dim: int = POSE_DIM, action_dim: int = POSE_DIM
) -> int:
    """Check the keys and shapes of a trajectory; ``shapes`` maps key -> shape (arrays need not be loaded).

    Returns:
        The number of steps T.

    Raises:
        TrajectoryFormatError: naming the missing or mis-shaped key.
    """
    for key in ("frames", "states", "fps"):
        if key not in shapes:
            raise TrajectoryFormatError(path, "is missing", key)
    frames = tuple(shapes["frames"])
    if len(frames) != 4 or frames[-1] != 3 or frames[0] < 1:
        raise TrajectoryFormatError(path, f"must have shape [T >= 1, H, W, 3], got {list(frames)}", "frames")
    T = frames[0]
    expected = {"states": (T, state_dim), "fps": (), "extrinsics": (T, 6), "actions": (T - 1, action_dim)}
    if "true_states" in shapes:  # [T, K], any K
        ts = tuple(shapes["true_states"])
        expected["true_states"] = (T, ts[1] if len(ts) == 2 else -1)
    for key, want in expected.items():
        if key in shapes and tuple(shapes[key]) != want:
            raise TrajectoryFormatError(path, f"must have shape {list(want)} (T = {T}), got {list(shapes[key])}", key)
    return T


def save_trajectory(
    path: str | os.PathLike,
    frames: np.ndarray,
    states: np.ndarray,
    fps: float,
    *,
    extrinsics: np.ndarray | None = None,
    actions: np.ndarray | None = None,
    metadata: Mapping[str, Any] | None = None,
    compress: bool = True,
    true_states: np.ndarray | None = None,
) -> Path:
    """Write one trajectory atomically (to a temporary file in the same folder, then renamed).

    Args:
        path: ``.npz`` file, or ``.h5``/``.hdf5`` (needs h5py).
        frames: uint8 ``[T, H, W, 3]``.
        states: ``[T, S]`` poses (S = 7) or declared states (stored as float32).
        fps: frame rate in Hz.
        extrinsics: ``[T, 6]`` camera poses, optional.
        actions: ``[T - 1, A]`` executed actions (A = 7 unless declared), optional.
        metadata: JSON-serialisable dict (task, seed, ``state_dim`` / ``action_dim`` when not 7, ...).
        compress: zip-deflate (npz) or gzip (HDF5) the arrays.
        true_states: ``[T, K]`` full simulator states, optional.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() not in TRAJECTORY_SUFFIXES:
        raise UserError(f"trajectory files end in {sorted(TRAJECTORY_SUFFIXES)}, got {str(path)!r}")
    f32 = lambda x: None if x is None else np.asarray(x, dtype=np.float32)  # noqa: E731
    traj = Trajectory(np.asarray(frames), f32(states), float(fps), f32(extrinsics), f32(actions), dict(metadata or {}))
    traj.path, traj.true_states = path, f32(true_states)  # the path is named in error messages
    traj.validate()
    try:
        meta = json.dumps(traj.metadata)
    except TypeError as e:
        raise UserError(f"metadata must be JSON-serialisable: {e}") from e
    arrays = {"frames": traj.frames, "states": traj.states, "fps": np.asarray(traj.fps, dtype=np.float64)}
    arrays |= {k: getattr(traj, k) for k in OPTIONAL_KEYS if getattr(traj, k) is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # mkstemp creates 0600; follow the umask like every other output
        with os.fdopen(fd, "wb") as f:
            if path.suffix.lower() in NPZ_SUFFIXES:
                (np.savez_compressed if compress else np.savez)(f, metadata=np.asarray(meta), **arrays)
            else:
                _write_h5(f, arrays, meta, compress)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_h5(fileobj: Any, arrays: Mapping[str, np.ndarray], meta: str, compress: bool) -> None:
    h5py = import_h5py()
    with h5py.File(fileobj, "w") as h5:
        for key, value in arrays.items():
            if key == "fps":
                h5.attrs["fps"] = float(value)
            else:
                h5.create_dataset(key, data=value, compression="gzip" if compress and value.ndim > 1 else None)
        h5.attrs["metadata"] = meta


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read and validate a trajectory file written by :func:`save_trajectory`.

    Raises:
        FileNotFoundError: no such file.
        TrajectoryFormatError: unreadable, or a key missing or mis-shaped (the message names the file and key).
    """
    path = Path(path)
    arrays, meta = _read_arrays(path, keys=None, indices=None)
    check_shapes({k: v.shape for k, v in arrays.items()}, path, *declared_dims(meta))
    traj = Trajectory(
        frames=arrays["frames"], states=arrays["states"].astype(np.float32), fps=float(arrays["fps"]),
        extrinsics=_f32_or_none(arrays.get("extrinsics")), actions=_f32_or_none(arrays.get("actions")),
        metadata=meta, path=path, true_states=_f32_or_none(arrays.get("true_states")),
    )  # fmt: skip
    traj.validate()
    return traj


def _f32_or_none(x: np.ndarray | None) -> np.ndarray | None:
    return None if x is None else x.astype(np.float32)


def _read_arrays(
    path: Path, keys: Sequence[str] | None, indices: np.ndarray | None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, metadata)`` of a trajectory file; with ``indices``, per-step arrays are read at those steps only."""
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix not in TRAJECTORY_SUFFIXES:
        raise TrajectoryFormatError(path, f"unknown trajectory suffix {suffix!r} (use .npz, .h5 or .hdf5)")
    read = _read_npz if suffix in NPZ_SUFFIXES else _read_h5
    try:
        return read(path, keys, indices)
    except TrajectoryFormatError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise TrajectoryFormatError(path, f"is not a readable trajectory ({type(e).__name__}: {e})") from e


def _select(path: Path, stored: Sequence[str], keys: Sequence[str] | None) -> list[str]:
    """The stored keys to read: all, or ``keys`` less the absent optional ones (an absent required key raises)."""
    if keys is None:
        return list(stored)
    for k in keys:
        if k not in stored and k not in OPTIONAL_KEYS:
            raise TrajectoryFormatError(path, "is missing", k)
    return [k for k in keys if k in stored]


def _take(array: Any, indices: np.ndarray | None) -> np.ndarray:
    return array[()] if indices is None or array.ndim == 0 else array[indices]


def _read_npz(path: Path, keys: Sequence[str] | None, indices: np.ndarray | None):
    with np.load(path, allow_pickle=False) as z:
        stored = [k for k in z.files if k != "metadata"]
        arrays = {k: _take(z[k], indices) for k in _select(path, stored, keys)}
        meta = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    return arrays, meta


def _read_h5(path: Path, keys: Sequence[str] | None, indices: np.ndarray | None):
    h5py = import_h5py()
    with h5py.File(path, "r") as h5:
        stored = [k for k in h5.keys() if isinstance(h5[k], h5py.Dataset)]
        arrays = {k: _take(h5[k], indices) for k in _select(path, stored, keys)}  # indices increase, as h5py needs
        if "fps" in h5.attrs:
            arrays["fps"] = np.asarray(h5.attrs["fps"], dtype=np.float64)
        meta = json.loads(h5.attrs["metadata"]) if "metadata" in h5.attrs else {}
    return arrays, meta


def read_shapes(path: str | os.PathLike) -> tuple[dict[str, tuple[int, ...]], float]:
    """Key -> shape of a trajectory file and its fps, without loading the frames.

    Raises:
        FileNotFoundError: no such file.
        TrajectoryFormatError: unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {str(path)!r}")
    try:
        if path.suffix.lower() in H5_SUFFIXES:
            h5py = import_h5py()
            with h5py.File(path, "r") as h5:
                shapes = {k: tuple(v.shape) for k, v in h5.items() if isinstance(v, h5py.Dataset)}
                fps = h5.attrs.get("fps")
                shapes |= {"fps": ()} if fps is not None else {}
        else:
            shapes, fps = _npz_headers(path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise TrajectoryFormatError(path, f"is not a readable trajectory ({type(e).__name__}: {e})") from e
    return shapes, float("nan") if fps is None else float(fps)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata dict of a trajectory file (``{}`` when it has none), without reading its arrays."""
    return _read_arrays(Path(path), keys=(), indices=None)[1]


def _npz_headers(path: Path) -> tuple[dict[str, tuple[int, ...]], float | None]:
    """Shapes from the ``.npy`` headers inside the zip (no decompression of the data) and the fps value."""
    shapes, fps = {}, None
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            key = name.removesuffix(".npy")
            with zf.open(name) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, _ = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, _ = np.lib.format.read_array_header_2_0(f)
                else:
                    shape = np.load(f, allow_pickle=False).shape
            shapes[key] = tuple(shape)
    if "fps" in shapes:
        with np.load(path, allow_pickle=False) as z:
            fps = float(z["fps"])
    return shapes, fps


# ---------------------------------------------------------------------------------------------------- sampling


def clip_frame_step(video_fps: float, fps: float | None = 4.0, frame_step: int | None = None) -> int:
    """Steps between sampled frames: ``frame_step`` if given, else the official ``ceil(video_fps / fps)``.

    The ratio is rounded to 6 decimals before the ceiling, so e.g. 12 Hz / 4 fps is 3, never 4 by float error.
    """
    if frame_step is not None:
        if int(frame_step) != frame_step or frame_step < 1:
            raise UserError(f"frame_step must be a positive integer, got {frame_step!r}")
        return int(frame_step)
    if fps is None or not fps > 0:
        raise UserError(f"fps must be positive (or give frame_step), got {fps!r}")
    if not (math.isfinite(video_fps) and video_fps > 0):
        raise UserError(f"the trajectory's frame rate is unknown ({video_fps!r}); sample with frame_step instead")
    return max(1, math.ceil(round(video_fps / fps, 6)))


def sample_clip_indices(length: int, frames: int, step: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Step indices of one clip, as the official DROID loader.

    Args:
        length: steps in the trajectory (T).
        frames: frames per clip (F).
        step: steps between frames.
        rng: None for the clip at the start; a generator draws the start uniformly in ``[0, T - F * step)``
            (official: the end in ``[F * step, T)``); a trajectory of exactly ``F * step`` steps starts at 0.

    Returns:
        int64 ``[F]``: ``start + step * arange(F)``.

    Raises:
        ValueError: ``T < F * step``.
    """
    span = frames * step
    if frames < 1 or step < 1:
        raise UserError(f"need frames >= 1 and step >= 1, got {frames} and {step}")
    if length < span:
        raise UserError(f"a clip of {frames} frames every {step} steps needs {span} steps, got {length}")
    start = 0 if rng is None or length == span else int(rng.integers(span, length)) - span
    return np.arange(start, start + span, step, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------- transforms


def droid_crop_box(height: int, width: int) -> Box:
    """The official DROID transform's crop: centred, aspect ratio clamped to [0.75, 1.35] (180x320 -> 180x243)."""
    return center_box(height, width, DROID_RATIO)


def _crop_resize_normalize(frames: torch.Tensor, box: Box, resolution: int) -> torch.Tensor:
    x = resized_crop(frames, box, resolution)  # [F, 3, res, res] float, 0-255
    return normalize(x, IMAGENET_MEAN, IMAGENET_STD).transpose(0, 1).contiguous()  # [3, F, res, res]


def droid_transform(frames: torch.Tensor, resolution: int = 256) -> torch.Tensor:
    """Official DROID clip transform: :func:`droid_crop_box`, bilinear resize, ImageNet normalisation.

    Args:
        frames: uint8 ``[F, H, W, 3]``.
        resolution: output side.

    Returns:
        float32 ``[3, F, resolution, resolution]``.
    """
    return _crop_resize_normalize(frames, droid_crop_box(frames.shape[1], frames.shape[2]), resolution)


def resize_transform(frames: torch.Tensor, resolution: int = 256) -> torch.Tensor:
    """Whole frame resized bilinearly to ``resolution`` x ``resolution`` and normalised (for square sim frames).

    Args:
        frames: uint8 ``[F, H, W, 3]``.

    Returns:
        float32 ``[3, F, resolution, resolution]``.
    """
    return _crop_resize_normalize(frames, (0, 0, frames.shape[1], frames.shape[2]), resolution)


def make_clip_transform(transform: str | ClipTransform | None, resolution: int = 256) -> ClipTransform | None:
    """``(uint8 [F, H, W, 3], rng) -> clip`` from a name or a callable.

    Args:
        transform: ``"droid"`` (:func:`droid_transform`), ``"resize"`` (:func:`resize_transform`), ``"center"``
            (short side to ``resolution``, centre crop: :func:`~vjepa2.data.transforms.preprocess`), any of these
            followed by ``+blur=S`` (then a Gaussian blur of sigma ``S`` x ``resolution``, not official: see
            :func:`~vjepa2.data.augment.gaussian_blur`), a callable taking ``(frames, rng)`` (e.g.
            :class:`~vjepa2.data.augment.VideoAugment`), or None (raw frames).
        resolution: output side of the named transforms.
    """
    if transform is None or callable(transform):
        return transform
    name, blur = parse_transform(transform)
    fn = functools.partial(_NAMED_TRANSFORMS[name], resolution=resolution)  # picklable, for spawned workers
    return functools.partial(_blurred, fn=fn, sigma=blur * resolution) if blur else fn


def parse_transform(transform: str) -> tuple[str, float]:
    """``"resize+blur=0.2"`` -> ``("resize", 0.2)``; ``"resize"`` -> ``("resize", 0.0)``. ValueError if unknown."""
    name, _, modifier = transform.partition("+")
    blur = 0.0 if not modifier else -1.0
    if modifier.startswith("blur="):
        try:
            blur = float(modifier.removeprefix("blur="))
        except ValueError:
            pass
    if name not in _NAMED_TRANSFORMS or blur < 0:
        raise UserError(
            f"unknown transform {transform!r}; expected one of {sorted(_NAMED_TRANSFORMS)}, optionally followed by "
            "'+blur=S' with S >= 0 (e.g. 'resize+blur=0.2'), a callable or None"
        )
    return name, blur


def _blurred(frames: torch.Tensor, rng: np.random.Generator, fn: ClipTransform, sigma: float) -> torch.Tensor:
    return gaussian_blur(fn(frames, rng), sigma)


def _droid_clip(frames: torch.Tensor, rng: np.random.Generator, resolution: int) -> torch.Tensor:
    return droid_transform(frames, resolution)


def _resize_clip(frames: torch.Tensor, rng: np.random.Generator, resolution: int) -> torch.Tensor:
    return resize_transform(frames, resolution)


def _center_clip(frames: torch.Tensor, rng: np.random.Generator, resolution: int) -> torch.Tensor:
    return preprocess(frames, resolution, resize_ratio=1.0)


_NAMED_TRANSFORMS = {"droid": _droid_clip, "resize": _resize_clip, "center": _center_clip}


# ---------------------------------------------------------------------------------------------------- dataset


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
        arrays, _ = _read_arrays(Path(path), ("frames", "states", "extrinsics"), indices)
        return StepData(arrays["frames"], arrays["states"], arrays.get("extrinsics"))

    def read_actions(self, path: str, indices: np.ndarray) -> np.ndarray:
        """The stored actions between consecutive ``indices`` (evenly spaced), stacked: ``[F - 1, step * A]``."""
        arrays, _ = _read_arrays(Path(path), ("actions",), np.arange(indices[0], indices[-1]))
        return stack_actions(arrays["actions"], len(indices) - 1)

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

    @property
    def action_dim(self) -> int:
        """Width A of the items' actions, shared by every trajectory: 7 for poses, ``step * action_dim`` otherwise."""
        return self._shared("action_dim", [self.dims_at(i).clip_action_dim(self.step_of(i)) for i in range(len(self))])

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
        step, path, poses = self.step_of(index), self.paths[index], self.dims_at(index).poses
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
