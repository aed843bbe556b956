import json
import sys

import av
import numpy as np
import pytest
import torch

from vjepa2.data.droid import (
    DroidDataset,
    droid_camera_serial,
    list_droid_trajectories,
    read_droid_trajectory,
)
from vjepa2.data.poses import poses_to_diffs
from vjepa2.data.trajectories import SkippedTrajectoryWarning, TrajectoryFormatError, import_h5py

h5py = pytest.importorskip("h5py")

LEFT, RIGHT = "23456789", "13579246"  # exterior camera serials; LEFT is ext2 here, as "left" is decided by position


def _write_mp4(path, n, shade, h=36, w=64, fps=15):
    """Frame i is uniform with value 5 i (+ shade), so the decoded frame index is round((mean - shade) / 5)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = w, h, "yuv420p", 4_000_000
        for i in range(n):
            img = np.full((h, w, 3), 5 * i + shade, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_droid(root, name, T=40, gripper_2d=False, drop=None):
    d = root / name
    rng = np.random.default_rng(T)
    cartesian = np.concatenate([np.arange(T)[:, None] / 100, rng.uniform(-0.5, 0.5, (T, 5))], axis=1)
    gripper = rng.uniform(0, 1, (T, 1) if gripper_2d else T)
    _write_mp4(d / "recordings" / "MP4" / f"{LEFT}.mp4", T, shade=0)
    _write_mp4(d / "recordings" / "MP4" / f"{RIGHT}.mp4", T, shade=3)
    with h5py.File(d / "trajectory.h5", "w") as h5:
        h5["observation/robot_state/cartesian_position"] = cartesian
        h5["observation/robot_state/gripper_position"] = gripper
        for serial, offset in ((LEFT, 1.0), (RIGHT, 2.0)):
            if drop != serial:
                h5[f"observation/camera_extrinsics/{serial}_left"] = np.full((T, 6), offset)
    meta = {
        "uuid": name,
        "current_task": "put the marker in the cup",
        "ext1_cam_serial": RIGHT,
        "ext2_cam_serial": LEFT,
        "left_mp4_path": f"lab/success/{name}/recordings/MP4/{LEFT}.mp4",
        "right_mp4_path": f"lab/success/{name}/recordings/MP4/{RIGHT}.mp4",
        "trajectory_length": T,
    }
    (d / f"metadata_{name}.json").write_text(json.dumps(meta))
    return d, cartesian, gripper


def _frame_index(frames, shade=0):
    return np.round((frames.reshape(len(frames), -1).mean(1) - shade) / 5).astype(int)


def test_read_droid_trajectory_end_to_end(tmp_path):
    d, cartesian, gripper = _write_droid(tmp_path, "traj0")
    traj = read_droid_trajectory(d)
    assert traj.frames.shape == (40, 36, 64, 3) and traj.frames.dtype == np.uint8
    np.testing.assert_array_equal(_frame_index(traj.frames), np.arange(40))
    np.testing.assert_allclose(traj.states, np.concatenate([cartesian, gripper[:, None]], 1), atol=1e-6)
    assert traj.states.shape == (40, 7) and traj.fps == 15.0
    np.testing.assert_array_equal(traj.extrinsics, np.full((40, 6), 1.0))  # the left camera's extrinsics
    assert traj.metadata["current_task"] == "put the marker in the cup" and traj.metadata["camera_serial"] == LEFT
    traj.validate()

    right = read_droid_trajectory(d, camera="right_mp4_path", fps=None)
    np.testing.assert_array_equal(_frame_index(right.frames, shade=3), np.arange(40))
    assert right.extrinsics[0, 0] == 2.0 and right.fps == 15.0  # fps None: read from the video
    assert droid_camera_serial(traj.metadata, "ext1") == RIGHT  # no ext1_mp4_path: falls back to the serial


def test_gripper_column_and_missing_keys(tmp_path):
    d, _, gripper = _write_droid(tmp_path, "g2", gripper_2d=True, drop=LEFT)
    np.testing.assert_allclose(read_droid_trajectory(d, camera="right").states[:, 6], gripper[:, 0], atol=1e-6)
    with pytest.raises(TrajectoryFormatError, match=f"camera_extrinsics/{LEFT}_left") as info:
        read_droid_trajectory(d, camera="left")
    assert "trajectory.h5" in str(info.value)
    with pytest.raises(ValueError, match="unknown DROID camera"):
        read_droid_trajectory(d, camera="top")


def test_droid_dataset_from_csv_and_root(tmp_path):
    root = tmp_path / "droid"
    dirs = [_write_droid(root, f"traj{i}", T=T)[0] for i, T in enumerate((40, 45))]
    _write_droid(root, "short", T=20)  # shorter than 8 frames x step 4
    csv = tmp_path / "droid_paths.csv"
    csv.write_text("".join(f"{d}\n" for d in dirs))
    ds = DroidDataset(csv, frames=8, fps=4.0, resolution=32)
    assert len(ds) == 2 and list_droid_trajectories(csv) == [str(d) for d in dirs]
    item = ds[1]
    assert item.clip.shape == (3, 8, 32, 32) and item.actions.shape == (7, 7) and item.states.shape == (8, 7)
    idx = item.indices.numpy()
    assert np.array_equal(np.diff(idx), np.full(7, 4)) and idx[-1] < 45  # 15 Hz at 4 fps -> step 4
    np.testing.assert_allclose(item.states[:, 0].numpy(), idx / 100, atol=1e-6)  # states at the frames' steps
    torch.testing.assert_close(item.actions, torch.from_numpy(poses_to_diffs(item.states.numpy())))
    assert (item.extrinsics == 1.0).all()

    with pytest.warns(SkippedTrajectoryWarning, match="1 trajectories too short"):
        raw = DroidDataset(root, transform=None)  # root folder: searched for trajectory.h5
    assert len(raw) == 2 and raw.num_too_short == 1
    item = raw[0]
    np.testing.assert_array_equal(_frame_index(item.clip.numpy()), item.indices.numpy())  # frames match indices


def test_missing_h5py_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        import_h5py()


def test_droid_trajectories_through_the_feature_cache(tmp_path, one_thread):
    from vjepa2.train.features import FeatureClipDataset, build_feature_cache
    from vjepa2.weights import load_encoder

    d, cartesian, _ = _write_droid(tmp_path / "droid", "traj0", T=40)
    pixels = DroidDataset(d, camera="right", frames=4, fps=4.0, resolution=64, transform="resize")
    assert _frame_index(pixels.read_frames(str(d)), shade=3).tolist() == list(range(40))
    cache = build_feature_cache(load_encoder("vit_test"), pixels.paths, tmp_path / "cache", 64, "resize", "fp32",
                                progress=False, reader=pixels)  # fmt: skip
    assert len(list(cache.glob("*.npy"))) == 1
    feats = FeatureClipDataset(pixels.paths, cache, reader=pixels, frames=4, fps=4.0)
    item, want = feats[0, 0, 1], pixels[0, 0, 1]
    assert item.clip.shape == (4, 16, 48) and np.array_equal(item.indices, want.indices)
    torch.testing.assert_close(item.states, want.states)
    np.testing.assert_allclose(item.states[:, :6].numpy(), cartesian[want.indices.numpy()], atol=1e-6)
    assert (item.extrinsics == 2.0).all()  # the right camera's
    with pytest.raises(ValueError, match="cached features hold one camera"):
        DroidDataset(d, camera=["left", "right"], frames=4).read_frames(str(d))
