"""Robot trajectories for V-JEPA 2-AC: the one-file-per-trajectory format, its writer and its readers.

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
Two-Rooms point agent): :class:`StepDims`, :func:`declared_dims`."""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vjepa2.errors import UserError

NPZ_SUFFIXES = frozenset({".npz"})
H5_SUFFIXES = frozenset({".h5", ".hdf5"})
TRAJECTORY_SUFFIXES = NPZ_SUFFIXES | H5_SUFFIXES
OPTIONAL_KEYS = ("extrinsics", "actions", "true_states")
POSE_DIM = 7  # states and actions unless metadata declares state_dim / action_dim

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
    arrays, meta = read_arrays(path, keys=None, indices=None)
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


def read_arrays(
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
    return read_arrays(Path(path), keys=(), indices=None)[1]


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
