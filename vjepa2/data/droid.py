"""DROID in its raw layout, read as the official V-JEPA 2-AC loader (``app/vjepa_droid/droid.py``) reads it.

A DROID trajectory directory holds

- ``metadata_<uuid>.json``: among others ``left_mp4_path`` / ``right_mp4_path`` / ``wrist_mp4_path`` (the recording
  of each view; "left" is whichever exterior camera, ``ext1`` or ``ext2``, sits on the left) and
  ``ext1_cam_serial`` / ``ext2_cam_serial`` / ``wrist_cam_serial``;
- ``trajectory.h5``: ``observation/robot_state/cartesian_position`` ``[T, 6]`` (xyz + extrinsic xyz Euler),
  ``observation/robot_state/gripper_position`` ``[T]`` and ``observation/camera_extrinsics/<serial>_left``
  ``[T, 6]``;
- ``recordings/MP4/<serial>.mp4``: one video per camera, at 15 Hz, frame t aligned with step t.

A camera's serial is the file name of its ``*_mp4_path`` without the extension. States are
``cartesian_position ++ gripper_position`` ``[T, 7]``, not normalised. The official list of trajectories is a CSV
with one directory per line (the first space-separated field); a root folder is searched for ``trajectory.h5``.
h5py is imported on first use.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np

from vjepa2.data.trajectories import Trajectory, TrajectoryFormatError, import_h5py
from vjepa2.data.trajectory_dataset import StepData, TrajectoryClipDataset
from vjepa2.data.video import VideoReadError
from vjepa2.errors import UserError

DROID_FPS = 15.0
H5_NAME = "trajectory.h5"
CARTESIAN_KEY = "observation/robot_state/cartesian_position"
GRIPPER_KEY = "observation/robot_state/gripper_position"
EXTRINSICS_GROUP = "observation/camera_extrinsics"
CAMERA_PATH_KEYS = {
    "left": "left_mp4_path",
    "right": "right_mp4_path",
    "wrist": "wrist_mp4_path",
    "ext1": "ext1_mp4_path",
    "ext2": "ext2_mp4_path",
}
CAMERA_SERIAL_KEYS = {"ext1": "ext1_cam_serial", "ext2": "ext2_cam_serial", "wrist": "wrist_cam_serial"}


# ---------------------------------------------------------------------------------------------------- one trajectory


def read_droid_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The trajectory's metadata JSON: ``metadata_*.json``, else the first ``*.json`` by name.

    Raises:
        FileNotFoundError: the directory has no JSON file.
        TrajectoryFormatError: the JSON does not parse.
    """
    directory = Path(directory)
    candidates = sorted(directory.glob("metadata_*.json")) or sorted(directory.glob("*.json"))
    if not candidates:
        raise FileNotFoundError(f"no metadata_*.json in DROID trajectory directory {str(directory)!r}")
    try:
        return json.loads(candidates[0].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TrajectoryFormatError(candidates[0], f"is not valid JSON ({e})") from e


def droid_camera_serial(metadata: dict[str, Any], camera: str = "left") -> str:
    """Serial of a camera view.

    Args:
        metadata: the trajectory's metadata (:func:`read_droid_metadata`).
        camera: ``"left"``, ``"right"``, ``"wrist"``, ``"ext1"``, ``"ext2"``, or a metadata key such as
            ``"left_mp4_path"`` (the official ``camera_views`` entries).

    Raises:
        ValueError: unknown camera name.
        TrajectoryFormatError: the metadata does not say which recording that camera is.
    """
    name = camera_name(camera)
    key = CAMERA_PATH_KEYS[name]
    if metadata.get(key):
        return Path(str(metadata[key])).name.split(".")[0]
    if metadata.get(CAMERA_SERIAL_KEYS.get(name, "")):
        return str(metadata[CAMERA_SERIAL_KEYS[name]])
    raise TrajectoryFormatError(None, f"metadata has no recording for camera {camera!r}", key)


def camera_name(camera: str) -> str:
    """``"left"`` for ``"left"`` or ``"left_mp4_path"``, etc.

    Raises:
        ValueError: not a DROID camera view.
    """
    for name, key in CAMERA_PATH_KEYS.items():
        if camera in (name, key):
            return name
    raise UserError(f"unknown DROID camera {camera!r}; expected one of {sorted(CAMERA_PATH_KEYS)}")


def droid_video_path(directory: str | os.PathLike, serial: str) -> Path:
    """``<directory>/recordings/MP4/<serial>.mp4``."""
    return Path(directory) / "recordings" / "MP4" / f"{serial}.mp4"


def _dataset(h5: Any, path: Path, key: str) -> np.ndarray:
    if key not in h5:
        raise TrajectoryFormatError(path, "is missing", key)
    return np.asarray(h5[key])


def _h5_length(directory: Path) -> int:
    """Steps T of a trajectory, from the shape of ``cartesian_position`` (no data read)."""
    h5py, path = import_h5py(), directory / H5_NAME
    with h5py.File(path, "r") as h5:
        if CARTESIAN_KEY not in h5:
            raise TrajectoryFormatError(path, "is missing", CARTESIAN_KEY)
        return int(h5[CARTESIAN_KEY].shape[0])


def read_droid_states(
    directory: str | os.PathLike, serial: str, indices: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """States and camera extrinsics from ``trajectory.h5``.

    Args:
        directory: the trajectory directory.
        serial: camera serial; its extrinsics are ``observation/camera_extrinsics/<serial>_left``.
        indices: steps to keep (all if None).

    Returns:
        float64 states ``[T, 7]`` (``cartesian_position ++ gripper_position``) and extrinsics ``[T, 6]``.

    Raises:
        TrajectoryFormatError: naming the missing or mis-shaped key.
    """
    h5py, path = import_h5py(), Path(directory) / H5_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {H5_NAME} in DROID trajectory directory {str(directory)!r}")
    with h5py.File(path, "r") as h5:
        cartesian = _dataset(h5, path, CARTESIAN_KEY).astype(np.float64)
        gripper = _dataset(h5, path, GRIPPER_KEY).astype(np.float64)
        extrinsics = _dataset(h5, path, f"{EXTRINSICS_GROUP}/{serial}_left").astype(np.float64)
    T = len(cartesian)
    if cartesian.shape != (T, 6):
        raise TrajectoryFormatError(path, f"must have shape [T, 6], got {list(cartesian.shape)}", CARTESIAN_KEY)
    if gripper.shape not in ((T,), (T, 1)):
        raise TrajectoryFormatError(path, f"must have shape [{T}] or [{T}, 1], got {list(gripper.shape)}", GRIPPER_KEY)
    if extrinsics.shape != (T, 6):
        key = f"{EXTRINSICS_GROUP}/{serial}_left"
        raise TrajectoryFormatError(path, f"must have shape [{T}, 6], got {list(extrinsics.shape)}", key)
    states = np.concatenate([cartesian, gripper.reshape(T, 1)], axis=1)
    return (states, extrinsics) if indices is None else (states[indices], extrinsics[indices])


def decode_frames(path: str | os.PathLike, indices: np.ndarray | None = None) -> np.ndarray:
    """Decode frames of a video with PyAV, sequentially, stopping after the last one wanted.

    Args:
        path: the video.
        indices: frame indices (any order, repeats allowed); None decodes every frame.

    Returns:
        uint8 ``[len(indices), H, W, 3]`` (``[n, H, W, 3]`` for all frames).

    Raises:
        VideoReadError: missing, unreadable, or shorter than the largest index.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "no such file")
    last = None if indices is None else int(np.max(indices))
    wanted = None if indices is None else set(np.asarray(indices).tolist())
    got: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream")
            for i, frame in enumerate(container.decode(container.streams.video[0])):
                if wanted is None or i in wanted:
                    got[i] = frame.to_ndarray(format="rgb24")
                if last is not None and i >= last:
                    break
    except (av.FFmpegError, OSError) as e:
        raise VideoReadError(path, f"{type(e).__name__}: {e}") from e
    if indices is None:
        if not got:
            raise VideoReadError(path, "no frame could be decoded")
        return np.stack([got[i] for i in range(len(got))])
    if len(got) < len(wanted):
        raise VideoReadError(path, f"the video ends before frame {last} ({len(got)} of {len(wanted)} frames found)")
    return np.stack([got[i] for i in np.asarray(indices).tolist()])


def _video_fps(path: Path) -> float:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return float(stream.average_rate or stream.guessed_rate or 0)
    except (av.FFmpegError, OSError, IndexError) as e:
        raise VideoReadError(path, f"cannot read the frame rate ({type(e).__name__}: {e})") from e


def read_droid_trajectory(
    directory: str | os.PathLike, camera: str = "left", fps: float | None = DROID_FPS
) -> Trajectory:
    """Read a whole DROID trajectory (every frame of one camera) into a :class:`Trajectory`.

    Args:
        directory: the trajectory directory (holding ``trajectory.h5``).
        camera: camera view, see :func:`droid_camera_serial`.
        fps: frame rate to record (DROID is 15 Hz); None reads the video's average rate.

    Returns:
        The trajectory, ``metadata`` being the DROID JSON plus ``camera`` and ``camera_serial``. If the video and
        the h5 disagree on the number of steps, both are cut to the shorter, with a warning.
    """
    directory = Path(directory)
    metadata = read_droid_metadata(directory)
    serial = droid_camera_serial(metadata, camera)
    states, extrinsics = read_droid_states(directory, serial)
    video = droid_video_path(directory, serial)
    frames = decode_frames(video)
    T = min(len(frames), len(states))
    if len(frames) != len(states):
        warnings.warn(f"{directory}: {len(frames)} video frames but {len(states)} h5 steps; keeping {T}", stacklevel=2)
    rate = _video_fps(video) if fps is None else float(fps)
    meta = {**metadata, "camera": camera, "camera_serial": serial}
    traj = Trajectory(frames[:T], states[:T].astype(np.float32), rate, extrinsics[:T].astype(np.float32), None, meta)
    traj.path = directory
    return traj


# ---------------------------------------------------------------------------------------------------- many trajectories


def list_droid_trajectories(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Trajectory directories of CSV lists (first space-separated field per line; relative to the CSV's folder;
    a ``.../trajectory.h5`` entry means its folder), root folders searched for ``trajectory.h5``, or directories.

    Raises:
        FileNotFoundError: a source does not exist.
    """
    sources = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    dirs: list[str] = []
    for source in sources:
        p = Path(source)
        if p.is_file():
            lines = (line.split()[0] for line in p.read_text().splitlines() if line.strip())
            entries = [p.parent / os.path.expanduser(e) for e in lines]
            dirs += [str(e.parent if e.name == H5_NAME else e) for e in entries]
        elif (p / H5_NAME).is_file():
            dirs.append(str(p))
        elif p.is_dir():
            dirs += sorted(str(h5.parent) for h5 in p.rglob(H5_NAME))
        else:
            raise FileNotFoundError(f"DROID source not found (a CSV list or a folder): {str(p)!r}")
    return dirs


class DroidDataset(TrajectoryClipDataset):
    """:class:`TrajectoryClipDataset` over DROID trajectory directories (official ``DROIDVideoDataset``).

    Defaults follow ``configs/train/vitg16/droid-256px-8f.yaml``: left camera, 8 frames at 4 fps (step 4 at
    15 Hz), 256 px with the official DROID transform.

    Args:
        sources: CSV lists of trajectory directories, root folders, or directories (see
            :func:`list_droid_trajectories`).
        camera: a camera view, or several to draw one per item at random (official ``camera_views``).
        video_fps: frame rate of the recordings; None reads each video's average rate at construction.
        **kwargs: ``frames``, ``fps``, ``frame_step``, ``resolution``, ``transform``, ``random_start``,
            ``camera_frame``, ``seed``, ``max_retries`` of :class:`TrajectoryClipDataset`.
    """

    def __init__(
        self,
        sources: str | os.PathLike | Sequence[str | os.PathLike],
        camera: str | Sequence[str] = "left",
        video_fps: float | None = DROID_FPS,
        **kwargs: Any,
    ) -> None:
        import_h5py()  # fail early with the install hint
        self.cameras = [camera_name(c) for c in ([camera] if isinstance(camera, str) else camera)]
        if not self.cameras:
            raise UserError("give at least one camera")
        self.video_fps = video_fps
        super().__init__(sources, **kwargs)

    def list_sources(self, sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
        return list_droid_trajectories(sources)

    def scan(self, path: str) -> tuple[int, float]:
        """``(T, fps)`` from the h5 shape; checks the metadata names every camera and their videos exist."""
        metadata = read_droid_metadata(path)
        for camera in self.cameras:
            video = droid_video_path(path, droid_camera_serial(metadata, camera))
            if not video.is_file():
                raise FileNotFoundError(f"missing video {str(video)!r}")
        rate = self.video_fps if self.video_fps is not None else _video_fps(video)
        return _h5_length(Path(path)), rate

    def read_steps(self, path: str, indices: np.ndarray, rng: np.random.Generator) -> StepData:
        camera = self.cameras[int(rng.integers(len(self.cameras)))] if len(self.cameras) > 1 else self.cameras[0]
        serial = droid_camera_serial(read_droid_metadata(path), camera)
        states, extrinsics = read_droid_states(path, serial, indices)
        return StepData(decode_frames(droid_video_path(path, serial), indices), states, extrinsics)

    # the feature cache holds one camera: these read the first

    def _serial(self, path: str) -> str:
        if len(self.cameras) > 1:
            raise UserError(f"cached features hold one camera, got {self.cameras}; give one camera")
        return droid_camera_serial(read_droid_metadata(path), self.cameras[0])

    def read_frames(self, path: str) -> np.ndarray:
        """Every frame of the camera's recording, cut to the h5's steps: uint8 ``[T, H, W, 3]``."""
        video = droid_video_path(path, self._serial(path))
        frames, length = decode_frames(video), _h5_length(Path(path))
        if len(frames) < length:
            raise VideoReadError(video, f"{len(frames)} frames, but {H5_NAME} has {length} steps")
        return frames[:length]

    def read_states(self, path: str, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return read_droid_states(path, self._serial(path), indices)

    def stamp(self, path: str) -> str:
        """The directory, the camera, and the size and mtime of ``trajectory.h5`` and of the camera's video."""
        serial = self._serial(path)
        files = [Path(path) / H5_NAME, droid_video_path(path, serial)]
        return "|".join(
            [str(Path(path).resolve()), serial, *(f"{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)]
        )
