"""LeRobot datasets (v2.1 and v3.0 layouts) read as trajectories, and how ``train-ac`` picks a reader for its sources.

The fixtures number the frames of a dataset globally (episode offset + step): frame g of the top camera is uniform
with value 5 g, of the wrist camera 245 - 5 g; state g is ``[g, 100 + g, -g]`` and action g is ``[g + 0.5, 1000 + g]``.
"""

import json
from fractions import Fraction

import av
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from vjepa2.data.droid import DroidDataset  # noqa: E402
from vjepa2.data.lerobot import LeRobotDataset, decode_at_times, read_lerobot_info  # noqa: E402
from vjepa2.data.trajectories import TrajectoryFormatError  # noqa: E402
from vjepa2.errors import UserError  # noqa: E402
from vjepa2.train.ac_config import ACDataSection, ACModelSection, ACOptimSection, ACRunSection, ACTrainConfig  # noqa: E402
from vjepa2.train.ac_data import data_dims, source_kind, trajectory_dataset  # noqa: E402
from vjepa2.train.features import FeatureClipDataset  # noqa: E402

FPS, H, W = 10, 24, 32
TOP, WRIST = "observation.images.top", "observation.images.wrist"
LENGTHS = (17, 20, 13)  # 50 frames; episode 1 starts at frame 17, between keyframes (GOP 5)
OFFSETS = np.cumsum((0, *LENGTHS[:-1]))
S, A = 3, 2


def _states(g: np.ndarray) -> np.ndarray:
    return np.stack([g, 100 + g, -g], axis=1).astype(np.float32)


def _actions(g: np.ndarray) -> np.ndarray:
    return np.stack([g + 0.5, 1000 + g], axis=1).astype(np.float32)


def _pixel(camera: str, g: np.ndarray) -> np.ndarray:
    return 5 * g if camera == TOP else 245 - 5 * g


def _frame_index(frames: np.ndarray, camera: str = TOP) -> np.ndarray:
    """Global frame numbers of decoded uint8 frames ``[n, H, W, 3]``."""
    mean = frames.reshape(len(frames), -1).mean(1)
    return np.round(mean / 5 if camera == TOP else (245 - mean) / 5).astype(int)


def _write_mp4(path, values, start: int = 0):
    """Uniform frames of the given values at FPS, pts from 0, a keyframe every 5 frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = W, H, "yuv420p", 4_000_000
        stream.codec_context.gop_size = 5
        for i, value in enumerate(values):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), value, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_rows(path, episodes, fixed_size: bool):
    """The data rows of the given episodes to one parquet."""
    g = np.concatenate([OFFSETS[e] + np.arange(LENGTHS[e]) for e in episodes])
    t = np.concatenate([np.arange(LENGTHS[e]) / FPS for e in episodes]).astype(np.float32)
    ep = np.concatenate([np.full(LENGTHS[e], e) for e in episodes])

    def vectors(x):
        typ = pa.list_(pa.float32(), x.shape[1]) if fixed_size else pa.list_(pa.float32())
        return pa.array(list(x), type=typ)

    table = pa.table(
        {
            "observation.state": vectors(_states(g)),
            "action": vectors(_actions(g)),
            "timestamp": pa.array(t),
            "frame_index": pa.array(g - OFFSETS[ep]),
            "episode_index": pa.array(ep),
            "index": pa.array(g),
            "task_index": pa.array(np.zeros_like(g)),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _info(version: str, data_path: str, video_path: str) -> dict:
    vector = lambda n: {"dtype": "float32", "shape": [n], "names": None}  # noqa: E731
    video = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]}
    features = {"observation.state": vector(S), "action": vector(A), TOP: video, WRIST: video}
    features |= {k: {"dtype": "int64", "shape": [1], "names": None} for k in ("frame_index", "episode_index", "index")}
    return {
        "codebase_version": version, "robot_type": "test", "total_episodes": len(LENGTHS), "fps": FPS,
        "chunks_size": 1000, "data_path": data_path, "video_path": video_path,
        "features": {**features, "timestamp": {"dtype": "float32", "shape": [1], "names": None}},
    }  # fmt: skip


def write_v21(root):
    """One parquet and one mp4 per episode and camera; fixed-size list columns."""
    for e, length in enumerate(LENGTHS):
        g = OFFSETS[e] + np.arange(length)
        _write_rows(root / f"data/chunk-000/episode_{e:06d}.parquet", [e], fixed_size=True)
        for camera in (TOP, WRIST):
            _write_mp4(root / f"videos/chunk-000/{camera}/episode_{e:06d}.mp4", _pixel(camera, g))
    info = _info(
        "v2.1",
        "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    )
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    lines = [json.dumps({"episode_index": e, "tasks": ["push"], "length": n}) for e, n in enumerate(LENGTHS)]
    (root / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root


def write_v30(root):
    """Episodes 0-1 in data file 0, episode 2 in data file 1; the top camera's three episodes in one mp4, the
    wrist camera's episode 0 in mp4 0 and episodes 1-2 in mp4 1; variable-size list columns."""
    _write_rows(root / "data/chunk-000/file-000.parquet", [0, 1], fixed_size=False)
    _write_rows(root / "data/chunk-000/file-001.parquet", [2], fixed_size=False)
    video_files = {TOP: [[0, 1, 2]], WRIST: [[0], [1, 2]]}
    rows = {"episode_index": [0, 1, 2], "tasks": [["push"]] * 3, "length": list(LENGTHS)}
    rows |= {"data/chunk_index": [0, 0, 0], "data/file_index": [0, 0, 1]}
    rows |= {"dataset_from_index": OFFSETS.tolist(), "dataset_to_index": (OFFSETS + LENGTHS).tolist()}
    for camera, files in video_files.items():
        col = {k: [None] * 3 for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")}
        for f, episodes in enumerate(files):
            g = np.concatenate([OFFSETS[e] + np.arange(LENGTHS[e]) for e in episodes])
            _write_mp4(root / f"videos/{camera}/chunk-000/file-{f:03d}.mp4", _pixel(camera, g))
            start = 0
            for e in episodes:
                col["chunk_index"][e], col["file_index"][e] = 0, f
                col["from_timestamp"][e], col["to_timestamp"][e] = start / FPS, (start + LENGTHS[e]) / FPS
                start += LENGTHS[e]
        rows |= {f"videos/{camera}/{k}": v for k, v in col.items()}
    rows["stats/action/mean"] = [[0.0, 0.0]] * 3
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    info = _info(
        "v3.0",
        "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    )
    (root / "meta/info.json").write_text(json.dumps(info))
    return root


@pytest.fixture(scope="module", params=["v2.1", "v3.0"])
def dataset(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param.replace(".", ""))
    return (write_v21 if request.param == "v2.1" else write_v30)(root)


def _edit_info(root, **changes):
    info = json.loads((root / "meta/info.json").read_text())
    for key, value in changes.items():
        info.pop(key) if value is None else info.__setitem__(key, value)
    (root / "meta/info.json").write_text(json.dumps(info))


# ---------------------------------------------------------------------------------------------------- the reader


def test_metadata_of_both_layouts(dataset):
    info = read_lerobot_info(dataset)
    assert info.camera == TOP and info.fps == FPS and (info.state_dim, info.action_dim) == (S, A)
    assert sorted(info.episodes) == [0, 1, 2] and [info.episodes[e].length for e in range(3)] == list(LENGTHS)
    if info.version == "v3.0":
        assert info.episodes[1].video_from == pytest.approx(LENGTHS[0] / FPS)
        assert info.episodes[2].data.name == "file-001.parquet"
        assert read_lerobot_info(dataset, WRIST).episodes[1].video_from == 0.0  # first in wrist mp4 1


@pytest.mark.parametrize("camera", [TOP, WRIST])
def test_clips_hold_the_right_frames_states_and_actions(dataset, camera):
    ds = LeRobotDataset(dataset, camera=camera, frames=4, fps=5.0, transform=None)  # 10 Hz at 5 fps: step 2
    assert len(ds) == 3 and ds.paths[1] == f"{dataset}#episode=1"
    assert (ds.state_dim, ds.action_dim) == (S, 2 * A)
    for episode in range(3):
        for draw in range(3):
            item = ds[episode, 0, draw]
            idx = item.indices.numpy()
            assert item.index == episode and np.array_equal(np.diff(idx), [2, 2, 2]) and idx[-1] < LENGTHS[episode]
            g = OFFSETS[episode] + idx
            assert item.clip.shape == (4, H, W, 3)
            np.testing.assert_array_equal(_frame_index(item.clip.numpy(), camera), g)
            np.testing.assert_array_equal(item.states.numpy(), _states(g))
            # the action between frames j and j + 1 is the 2 stored actions from frame j on, concatenated
            want = np.concatenate([_actions(g[:-1]), _actions(g[:-1] + 1)], axis=1)
            np.testing.assert_array_equal(item.actions.numpy(), want)
            assert (item.extrinsics == 0).all()


def test_whole_episode_frames_for_the_feature_cache(dataset):
    ds = LeRobotDataset(dataset, frames=4, fps=5.0, transform=None)
    frames = ds.read_frames(ds.paths[1])
    np.testing.assert_array_equal(_frame_index(frames), OFFSETS[1] + np.arange(LENGTHS[1]))
    states, extrinsics = ds.read_states(ds.paths[2], np.array([0, 5]))
    np.testing.assert_array_equal(states, _states(OFFSETS[2] + np.array([0, 5])))
    assert extrinsics is None
    assert ds.stamp(ds.paths[0]) != ds.stamp(ds.paths[1])


def test_decode_at_times_seeks_into_a_concatenated_video(tmp_path):
    path = tmp_path / "v.mp4"
    _write_mp4(path, 5 * np.arange(40))
    times = np.array([3.3, 1.7, 1.7, 2.0])  # any order, repeats allowed
    np.testing.assert_array_equal(_frame_index(decode_at_times(path, times, FPS)), [33, 17, 17, 20])
    with pytest.raises(Exception, match="no frame within"):
        decode_at_times(path, np.array([4.5]), FPS)  # past the end


def test_transformed_clips(dataset):
    item = LeRobotDataset(dataset, frames=4, fps=5.0, resolution=16, transform="resize")[1]
    assert item.clip.shape == (3, 4, 16, 16)


# ---------------------------------------------------------------------------------------------------- errors


def test_unknown_camera_lists_the_available_ones(dataset):
    with pytest.raises(UserError, match="no camera 'observation.images.side'") as info:
        LeRobotDataset(dataset, camera="observation.images.side")
    assert TOP in str(info.value) and WRIST in str(info.value)


def test_unsupported_version_and_missing_info_keys(tmp_path):
    root = write_v21(tmp_path / "ds")
    _edit_info(root, codebase_version="v1.6")
    with pytest.raises(UserError, match=r"codebase_version 'v1\.6' is not supported"):
        LeRobotDataset(root)
    for key in ("fps", "data_path", "features"):
        _edit_info(root, codebase_version="v2.1", **{key: None})
        with pytest.raises(TrajectoryFormatError, match=f"info.json.*key '{key}' is missing"):
            LeRobotDataset(root)
        root = write_v21(tmp_path / f"ds-{key}")
    info = json.loads((root / "meta/info.json").read_text())
    del info["features"]["action"]
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(TrajectoryFormatError, match="no feature 'action'"):
        LeRobotDataset(root)


def test_missing_v3_episode_column_is_named(tmp_path):
    root = write_v30(tmp_path / "ds")
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).drop_columns([f"videos/{TOP}/from_timestamp"]), path)
    with pytest.raises(TrajectoryFormatError, match=f"videos/{TOP}/from_timestamp"):
        LeRobotDataset(root)


def test_data_wider_than_declared_is_a_format_error(tmp_path):
    root = write_v21(tmp_path / "ds")
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["observation.state"]["shape"] = [4]
    (root / "meta/info.json").write_text(json.dumps(info))
    ds = LeRobotDataset(root, frames=4, fps=5.0, transform=None, max_retries=0)
    with pytest.raises(TrajectoryFormatError, match="has width 3, info.json says 4"):
        ds.read_states(ds.paths[0], np.array([0]))


# ---------------------------------------------------------------------------------------------------- train-ac


def _config(*trajectories, camera=None, **model) -> ACTrainConfig:
    return ACTrainConfig(
        model=ACModelSection(encoder="vit_test", predictor="ac_vit_test", **model),
        data=ACDataSection(
            trajectories=tuple(map(str, trajectories)),
            camera=camera,
            frames=4,
            fps=5.0,
            resolution=64,
            transform="resize",
            batch_size=2,
            num_workers=0,
        ),  # fmt: skip
    )


def test_train_ac_reads_lerobot_by_prefix_or_detection(tmp_path):
    root = write_v30(tmp_path / "ds")
    assert source_kind(str(root)) == ("lerobot", str(root)) and source_kind(f"lerobot:{root}") == ("lerobot", str(root))
    assert source_kind(str(tmp_path)) == ("files", str(tmp_path))
    for entry in (str(root), f"lerobot:{root}"):
        ds = trajectory_dataset(_config(entry, camera=WRIST))
        assert isinstance(ds, LeRobotDataset) and len(ds) == 3
        np.testing.assert_array_equal(_frame_index(ds.read_frames(ds.paths[2]), WRIST), OFFSETS[2] + np.arange(13))
    assert data_dims(_config(root), ds) == {"action_dim": 2 * A, "state_dim": S}


def test_a_model_of_other_widths_names_the_dataset_and_both_dims(tmp_path):
    root = write_v21(tmp_path / "ds")
    ds = trajectory_dataset(_config(f"lerobot:{root}"))
    with pytest.raises(UserError, match=rf"model\.action_dim=7, but the trajectories give 4 \({root}#episode=0"):
        data_dims(_config(root, action_dim=7), ds)
    with pytest.raises(UserError, match=rf"model\.state_dim=7, but the trajectories give 3 \({root}#episode=0"):
        data_dims(_config(root, state_dim=7), ds)


def test_train_ac_reads_droid_by_prefix_or_detection(tmp_path):
    write_droid = pytest.importorskip("test_droid")._write_droid  # tests/data/test_droid.py (skips without h5py)
    episode = write_droid(tmp_path / "droid", "traj0", T=40)[0]
    assert source_kind(str(episode)) == ("droid", str(episode))
    for entry in (str(episode), f"droid:{episode}", f"droid:{tmp_path / 'droid'}"):  # a root needs the prefix
        ds = trajectory_dataset(_config(entry))
        assert isinstance(ds, DroidDataset) and ds.paths == [str(episode)] and ds.cameras == ["left"]
        assert (ds.state_dim, ds.action_dim) == (7, 7)
    item = trajectory_dataset(_config(f"droid:{episode}", camera="right"))[0]
    assert (item.extrinsics == 2.0).all()  # the right camera's extrinsics


def test_mixed_kinds_and_a_camera_for_files_are_clear_errors(tmp_path):
    root = write_v21(tmp_path / "ds")
    files = tmp_path / "trajectories"
    files.mkdir()
    with pytest.raises(UserError, match=r"mixes kinds of source \['files', 'lerobot'\]"):
        trajectory_dataset(_config(root, files))
    with pytest.raises(UserError, match="data.camera='top' is for droid: and lerobot: sources"):
        trajectory_dataset(_config(files, camera="top"))
    assert isinstance(trajectory_dataset(_config(root, f"lerobot:{root}")), LeRobotDataset)  # one kind, twice


def test_train_ac_end_to_end_with_cached_features(tmp_path, one_thread):
    from vjepa2.train.ac import train_ac
    from vjepa2.train.metrics import read_metrics

    root = write_v30(tmp_path / "ds")
    cfg = _config(f"lerobot:{root}")
    run = ACRunSection(out=str(tmp_path / "run"), dtype="fp32", device="cpu", progress=False, log_every=1)
    cfg = ACTrainConfig(model=cfg.model, data=cfg.data, optim=ACOptimSection(steps=2, warmup=1, anneal=0), run=run)
    out = train_ac(cfg)
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]
    (cache,) = (out / "features").iterdir()
    assert len(list(cache.glob("*.npy"))) == 3  # one per episode
    pixels = trajectory_dataset(cfg)
    feats = FeatureClipDataset(pixels.paths, cache, reader=pixels, frames=4, fps=5.0)
    item, want = feats[1, 0, 0], pixels[1, 0, 0]
    assert item.clip.shape == (4, 16, 48) and np.array_equal(item.indices, want.indices)  # vit_test: 4 x 4 x 48
    np.testing.assert_array_equal(item.actions.numpy(), want.actions.numpy())
    np.testing.assert_array_equal(item.states.numpy(), _states(OFFSETS[1] + want.indices.numpy()))
