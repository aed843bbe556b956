"""LeRobot datasets (codebase versions v2.0, v2.1 and v3.0) read as robot trajectories, without the ``lerobot`` package.

A dataset root holds ``meta/info.json``: ``codebase_version``, ``fps``, ``features`` (name -> ``dtype``, ``shape``; the
cameras have dtype ``"video"``), the path templates ``data_path`` / ``video_path`` and, in v2, ``chunks_size``. Then

- v2.0 / v2.1: ``meta/episodes.jsonl`` (one ``{"episode_index", "length", ...}`` a line), one parquet per episode
  (``data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet``, ``episode_chunk = index // chunks_size``)
  and one mp4 per episode and camera (``videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4``);
- v3.0: ``meta/episodes/chunk-*/file-*.parquet`` with a row per episode naming its data file (``data/chunk_index``,
  ``data/file_index``; rows ``dataset_from_index`` to ``dataset_to_index``) and, per camera, its video file
  (``videos/<key>/chunk_index``, ``videos/<key>/file_index``) and where it starts there
  (``videos/<key>/from_timestamp``); many episodes share a data parquet and an mp4
  (``data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet``, ``videos/{video_key}/chunk-...mp4``).

A data row is a frame: ``observation.state`` (the states), ``action`` (taken at that frame), ``timestamp`` (seconds
from the episode's start), ``episode_index`` and ``frame_index``. As in LeRobot, the frame of row t is the camera's
video at ``from_timestamp + timestamp[t]`` (from_timestamp is 0 in v2). Clip actions are the stored actions, the
``step`` of them between two sampled frames concatenated, whatever the state width (LeRobot states need not be
poses). pyarrow is imported on first use (the ``lerobot`` extra).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from vjepa2.data.trajectories import StepDims, TrajectoryFormatError
from vjepa2.data.trajectory_dataset import StepData, TrajectoryClipDataset, stack_actions
from vjepa2.data.video import VideoReadError
from vjepa2.errors import UserError

INFO_PATH = "meta/info.json"
SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
STATE_KEY, ACTION_KEY = "observation.state", "action"
EPISODE_SEP = "#episode="  # a dataset item's path: "<root>#episode=<episode_index>"


def import_parquet() -> Any:
    """``pyarrow.parquet``, imported on first use with an actionable error when it is missing."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError("reading LeRobot datasets needs pyarrow: `pip install 'vjepa2[lerobot]'`") from e
    return pq


def is_lerobot_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a LeRobot dataset root (holds ``meta/info.json``)."""
    return (Path(path) / INFO_PATH).is_file()


@dataclass(frozen=True)
class LeRobotEpisode:
    """Where one episode is: ``length`` frames, in ``data`` (a parquet) and ``video`` from ``video_from`` seconds."""

    length: int
    data: Path
    video: Path
    video_from: float = 0.0


@dataclass(frozen=True)
class LeRobotInfo:
    """A dataset's metadata: version, frame rate, the camera read, state/action widths and its episodes by index."""

    root: Path
    version: str
    fps: float
    camera: str
    state_dim: int
    action_dim: int
    episodes: dict[int, LeRobotEpisode]


def read_lerobot_info(root: str | os.PathLike, camera: str | None = None) -> LeRobotInfo:
    """Read and check a dataset's metadata (``meta/info.json`` and the episode index).

    Args:
        root: the dataset root.
        camera: a video key of ``info.json``'s features; None takes the first.

    Raises:
        UserError: not a dataset, an unsupported ``codebase_version``, or a camera it does not have (the message
            lists the available ones).
        TrajectoryFormatError: a missing or malformed key of ``info.json`` or of the episode index.
    """
    root = Path(root)
    path = root / INFO_PATH
    if not path.is_file():
        raise UserError(f"{str(root)!r} is not a LeRobot dataset: it has no {INFO_PATH}")
    info = _read_json(path)
    for key in ("codebase_version", "fps", "features", "data_path", "video_path"):
        if key not in info:
            raise TrajectoryFormatError(path, "is missing", key)
    version = str(info["codebase_version"])
    if version not in SUPPORTED_VERSIONS:
        raise UserError(f"{str(root)!r}: LeRobot codebase_version {version!r} is not supported ({SUPPORTED_VERSIONS})")
    fps, features = info["fps"], info["features"]
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise TrajectoryFormatError(path, f"must be a positive frame rate, got {fps!r}", "fps")
    if not isinstance(features, dict):
        raise TrajectoryFormatError(path, "must map feature names to {dtype, shape}", "features")
    videos = [k for k, f in features.items() if isinstance(f, dict) and f.get("dtype") == "video"]
    if not videos:
        raise TrajectoryFormatError(
            path, "has no video feature (dtype 'video'); image datasets are not read", "features"
        )
    camera = videos[0] if camera is None else camera
    if camera not in videos:
        raise UserError(f"{str(root)!r}: no camera {camera!r}; its video keys are {videos}")
    dims = [_width(path, features, key) for key in (STATE_KEY, ACTION_KEY)]
    episodes = (_v2_episodes if version.startswith("v2") else _v3_episodes)(root, info, camera)
    return LeRobotInfo(root, version, float(fps), camera, *dims, episodes)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TrajectoryFormatError(path, f"is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise TrajectoryFormatError(path, "must hold a JSON object")
    return data


def _width(path: Path, features: dict[str, Any], key: str) -> int:
    """Width of a 1-D feature (``shape`` ``[n]``) of ``info.json``."""
    if key not in features:
        raise TrajectoryFormatError(path, f"has no feature {key!r} (trajectories need states and actions)", "features")
    shape = features[key].get("shape") if isinstance(features[key], dict) else None
    if not isinstance(shape, list | tuple) or len(shape) != 1 or not isinstance(shape[0], int):
        raise TrajectoryFormatError(path, f"must have a 1-D shape [n], got {shape!r}", f"features.{key}.shape")
    return int(shape[0])


def _template(path: Path, info: dict[str, Any], key: str, **fields: Any) -> str:
    try:
        return str(info[key]).format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise TrajectoryFormatError(path, f"is not a template of {sorted(fields)} ({e!r})", key) from e


def _v2_episodes(root: Path, info: dict[str, Any], camera: str) -> dict[int, LeRobotEpisode]:
    """Episodes of ``meta/episodes.jsonl``: one parquet and one mp4 per episode."""
    path, info_path = root / "meta" / "episodes.jsonl", root / INFO_PATH
    if not path.is_file():
        raise TrajectoryFormatError(path, "is missing (the episodes of a v2 dataset)")
    chunks = int(info.get("chunks_size", 1000))
    episodes = {}
    for n, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            index, length = int(row["episode_index"]), int(row["length"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise TrajectoryFormatError(path, f"line {n + 1} is not {{episode_index, length, ...}} ({e!r})") from e
        fields = {"episode_chunk": index // chunks, "episode_index": index}
        data = root / _template(info_path, info, "data_path", **fields)
        video = root / _template(info_path, info, "video_path", video_key=camera, **fields)
        episodes[index] = LeRobotEpisode(length, data, video)
    return episodes


def _v3_episodes(root: Path, info: dict[str, Any], camera: str) -> dict[int, LeRobotEpisode]:
    """Episodes of ``meta/episodes/chunk-*/file-*.parquet``: shared data parquets and mp4s."""
    pq = import_parquet()
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise TrajectoryFormatError(
            root / "meta" / "episodes", "holds no chunk-*/file-*.parquet (a v3 dataset's episodes)"
        )
    video = [f"videos/{camera}/{k}" for k in ("chunk_index", "file_index", "from_timestamp")]
    columns = ["episode_index", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index", *video]
    info_path, episodes = root / INFO_PATH, {}
    for file in files:
        missing = [c for c in columns if c not in pq.read_schema(file).names]
        if missing:
            raise TrajectoryFormatError(file, "is missing (a column of the episode index)", missing[0])
        rows = pq.read_table(file, columns=columns).to_pydict()
        for i, index in enumerate(rows["episode_index"]):
            get = {c: rows[c][i] for c in columns}
            data = _template(info_path, info, "data_path", chunk_index=get["data/chunk_index"],
                             file_index=get["data/file_index"])  # fmt: skip
            mp4 = _template(info_path, info, "video_path", video_key=camera, chunk_index=get[video[0]],
                            file_index=get[video[1]])  # fmt: skip
            length = int(get["dataset_to_index"]) - int(get["dataset_from_index"])
            episodes[int(index)] = LeRobotEpisode(length, root / data, root / mp4, float(get[video[2]]))
    return episodes


def read_episode_table(episode: LeRobotEpisode, index: int, dims: StepDims) -> dict[str, np.ndarray]:
    """One episode's rows of its data parquet, in frame order.

    Returns:
        float64 ``states`` ``[T, S]``, ``actions`` ``[T, A]`` and ``timestamps`` ``[T]`` (seconds from the
        episode's start).

    Raises:
        TrajectoryFormatError: a missing column, a width other than ``info.json``'s, or not ``length`` rows.
    """
    pq, path = import_parquet(), episode.data
    if not path.is_file():
        raise FileNotFoundError(f"missing LeRobot data file {str(path)!r}")
    names = pq.read_schema(path).names
    for key in (STATE_KEY, ACTION_KEY, "timestamp", "episode_index"):
        if key not in names:
            raise TrajectoryFormatError(path, "is missing", key)
    columns = [STATE_KEY, ACTION_KEY, "timestamp", *(["frame_index"] if "frame_index" in names else [])]
    table = pq.read_table(path, columns=columns, filters=[("episode_index", "==", index)])
    if table.num_rows != episode.length:
        raise TrajectoryFormatError(
            path, f"holds {table.num_rows} rows of episode {index}, its metadata {episode.length}"
        )
    order = np.argsort(_column(table, "frame_index", path)[:, 0], kind="stable") if "frame_index" in columns else None
    out = {}
    for name, key, width in (("states", STATE_KEY, dims.state_dim), ("actions", ACTION_KEY, dims.action_dim)):
        out[name] = _column(table, key, path)
        if out[name].shape[1] != width:
            raise TrajectoryFormatError(path, f"has width {out[name].shape[1]}, info.json says {width}", key)
    out["timestamps"] = _column(table, "timestamp", path)[:, 0]
    return out if order is None else {k: v[order] for k, v in out.items()}


def _column(table: Any, key: str, path: Path) -> np.ndarray:
    """A numeric (or list of numbers) column as float64 ``[rows, width]``."""
    import pyarrow as pa

    column = table.column(key).combine_chunks()
    try:
        nested = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
        values = column.flatten() if nested or pa.types.is_fixed_size_list(column.type) else column
        return np.asarray(values.to_numpy(zero_copy_only=False), np.float64).reshape(table.num_rows, -1)
    except (ValueError, TypeError) as e:
        raise TrajectoryFormatError(path, f"is not a numeric column of fixed width ({e})", key) from e


def decode_at_times(path: str | os.PathLike, times: np.ndarray, fps: float) -> np.ndarray:
    """Frames of a video at ``times`` (seconds): for each, the frame nearest in time, within half a frame period.

    Seeks to the keyframe before the first time and decodes until past the last (so an episode in the middle of a
    long v3 mp4 costs one GOP more than its frames).

    Returns:
        uint8 ``[len(times), H, W, 3]``.

    Raises:
        VideoReadError: missing, unreadable, or no frame near one of the times.
    """
    path, times = Path(path), np.asarray(times, np.float64)
    if not path.is_file():
        raise VideoReadError(path, "no such file")
    wanted, tol = np.unique(times), 0.5 / fps
    best: dict[int, tuple[float, np.ndarray]] = {}
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(path, "no video stream")
            stream = container.streams.video[0]
            if wanted[0] > tol and stream.time_base:
                container.seek(int((wanted[0] - tol) / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if frame.time > wanted[-1] + tol:
                    break
                k = int(np.searchsorted(wanted, frame.time))
                k = min((j for j in (k - 1, k) if 0 <= j < len(wanted)), key=lambda j: abs(wanted[j] - frame.time))
                err = abs(wanted[k] - frame.time)
                if err <= tol and (k not in best or err < best[k][0]):
                    best[k] = (err, frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError) as e:
        raise VideoReadError(path, f"{type(e).__name__}: {e}") from e
    missing = [float(t) for k, t in enumerate(wanted) if k not in best]
    if missing:
        raise VideoReadError(path, f"no frame within {tol:.4f}s of t={missing[0]:.4f}s ({len(missing)} times missed)")
    return np.stack([best[int(k)][1] for k in np.searchsorted(wanted, times)])


class LeRobotDataset(TrajectoryClipDataset):
    """:class:`TrajectoryClipDataset` over the episodes of LeRobot datasets (v2.0, v2.1, v3.0), one camera.

    An item's path is ``"<root>#episode=<index>"``. Datasets are checked at construction (see
    :func:`read_lerobot_info`); an episode whose files are missing is skipped with a warning.

    Args:
        sources: dataset roots (folders holding ``meta/info.json``).
        camera: a video key (e.g. ``"observation.images.top"``); None takes each dataset's first.
        **kwargs: ``frames``, ``fps``, ``frame_step``, ``resolution``, ``transform``, ``random_start``, ``seed``,
            ``max_retries`` of :class:`TrajectoryClipDataset`.
    """

    stored_actions = True
    max_cached_episodes = 32  # per process: the states, actions and timestamps of recently read episodes

    def __init__(
        self, sources: str | os.PathLike | Sequence[str | os.PathLike], camera: str | None = None, **kwargs: Any
    ) -> None:
        import_parquet()  # fail early with the install hint
        self.camera = camera
        self.datasets: dict[str, LeRobotInfo] = {}
        self._tables: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        super().__init__(sources, **kwargs)

    def list_sources(self, sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
        """``"<root>#episode=<index>"`` of every episode of every dataset, by index."""
        sources = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        paths = []
        for source in sources:
            root = os.fspath(source)
            if not Path(root).is_dir():
                raise FileNotFoundError(f"LeRobot dataset not found: {root!r}")
            info = self.datasets[root] = read_lerobot_info(root, self.camera)
            paths += [f"{root}{EPISODE_SEP}{index}" for index in sorted(info.episodes)]
        return paths

    def episode(self, path: str) -> tuple[LeRobotInfo, int, LeRobotEpisode]:
        """The dataset, episode index and files of an item's path."""
        root, _, index = path.rpartition(EPISODE_SEP)
        info = self.datasets[root]
        return info, int(index), info.episodes[int(index)]

    def dims_of(self, path: str) -> StepDims:
        info = self.episode(path)[0]
        return StepDims(info.state_dim, info.action_dim)

    def scan(self, path: str) -> tuple[int, float]:
        """``(length, fps)`` from the metadata; checks the episode's data file and video exist."""
        info, _, episode = self.episode(path)
        for file in (episode.data, episode.video):
            if not file.is_file():
                raise FileNotFoundError(f"missing {str(file)!r}")
        return episode.length, info.fps

    def _table(self, path: str) -> dict[str, np.ndarray]:
        if path in self._tables:
            self._tables.move_to_end(path)
        else:
            _, index, episode = self.episode(path)
            self._tables[path] = read_episode_table(episode, index, self.dims_of(path))
            if len(self._tables) > self.max_cached_episodes:
                self._tables.popitem(last=False)
        return self._tables[path]

    def _frames(self, path: str, indices: np.ndarray | slice) -> np.ndarray:
        info, _, episode = self.episode(path)
        return decode_at_times(episode.video, episode.video_from + self._table(path)["timestamps"][indices], info.fps)

    def read_steps(self, path: str, indices: np.ndarray, rng: np.random.Generator) -> StepData:
        return StepData(self._frames(path, indices), *self.read_states(path, indices))

    def read_states(self, path: str, indices: np.ndarray) -> tuple[np.ndarray, None]:
        return self._table(path)["states"][indices], None

    def read_actions(self, path: str, indices: np.ndarray) -> np.ndarray:
        return stack_actions(self._table(path)["actions"][indices[0] : indices[-1]], len(indices) - 1)

    def read_frames(self, path: str) -> np.ndarray:
        return self._frames(path, slice(None))

    def stamp(self, path: str) -> str:
        """The dataset root, the episode, the camera, and the size and mtime of its data file and video."""
        info, index, episode = self.episode(path)
        files = [f.stat() for f in (episode.data, episode.video)]
        return "|".join(
            [str(info.root.resolve()), str(index), info.camera, *(f"{s.st_size}:{s.st_mtime_ns}" for s in files)]
        )
