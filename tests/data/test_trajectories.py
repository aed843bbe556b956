import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vjepa2.data.clip_sampling import clip_frame_step, sample_clip_indices
from vjepa2.data.poses import poses_to_diffs, to_camera_frame
from vjepa2.data.sampler import DrawKey
from vjepa2.data.trajectories import (
    SkippedTrajectoryWarning,
    Trajectory,
    TrajectoryFormatError,
    load_trajectory,
    read_shapes,
    save_trajectory,
)
from vjepa2.data.trajectory_dataset import TrajectoryClipDataset
from vjepa2.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    droid_crop_box,
    droid_transform,
    gaussian_blur,
    make_clip_transform,
    normalize,
    parse_transform,
    resize_transform,
)


def _arrays(T=40, h=12, w=16, extrinsics=True):
    """Frame t has every pixel at value t and state x = t, so a clip's frames and states reveal their indices."""
    rng = np.random.default_rng(T)
    frames = np.broadcast_to(np.arange(T, dtype=np.uint8)[:, None, None, None], (T, h, w, 3)).copy()
    states = np.concatenate([np.arange(T)[:, None], rng.uniform(-0.5, 0.5, (T, 5)), rng.uniform(0, 1, (T, 1))], 1)
    out = {"frames": frames, "states": states.astype(np.float32)}
    if extrinsics:
        out["extrinsics"] = rng.normal(size=(T, 6)).astype(np.float32)
    return out


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_round_trip(tmp_path, suffix):
    if suffix == ".h5":
        pytest.importorskip("h5py")
    a = _arrays()
    actions = np.ones((39, 7), np.float32)
    meta = {"task": "push the cube", "seed": 3}
    path = save_trajectory(tmp_path / f"t{suffix}", fps=15, actions=actions, metadata=meta, **a)
    assert [p.name for p in tmp_path.iterdir()] == [f"t{suffix}"]  # the temporary file is gone
    traj = load_trajectory(path)
    np.testing.assert_array_equal(traj.frames, a["frames"])
    np.testing.assert_array_equal(traj.states, a["states"])
    np.testing.assert_array_equal(traj.extrinsics, a["extrinsics"])
    np.testing.assert_array_equal(traj.actions, actions)
    assert traj.fps == 15.0 and traj.metadata == meta and traj.path == path and len(traj) == 40
    shapes, fps = read_shapes(path)
    assert shapes["frames"] == (40, 12, 16, 3) and shapes["states"] == (40, 7) and fps == 15.0
    traj.save(path)  # overwrite in place
    assert load_trajectory(path).metadata == meta


def test_optional_keys_absent(tmp_path):
    a = _arrays(extrinsics=False)
    traj = load_trajectory(save_trajectory(tmp_path / "t.npz", fps=10.0, **a, compress=False))
    assert traj.extrinsics is None and traj.actions is None and traj.metadata == {}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda a: a.pop("states"), "states"),
        (lambda a: a.update(states=np.zeros((40, 6), np.float32)), "states"),
        (lambda a: a.update(extrinsics=np.zeros((39, 6), np.float32)), "extrinsics"),
        (lambda a: a.update(actions=np.zeros((40, 7), np.float32)), "actions"),
        (lambda a: a.update(frames=np.zeros((40, 12, 16), np.uint8)), "frames"),
        (lambda a: a.pop("fps"), "fps"),
    ],
)
def test_bad_file_names_file_and_key(tmp_path, change, key):
    a = _arrays() | {"fps": np.asarray(15.0)}
    change(a)
    path = tmp_path / "bad.npz"
    np.savez(path, **a)
    with pytest.raises(TrajectoryFormatError, match=key) as info:
        load_trajectory(path)
    assert info.value.key == key and "bad.npz" in str(info.value)


def test_unreadable_and_invalid_inputs(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(TrajectoryFormatError, match="garbage.npz"):
        load_trajectory(garbage)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_trajectory(tmp_path / "missing.npz")
    a = _arrays()
    with pytest.raises(TrajectoryFormatError, match="uint8"):
        save_trajectory(tmp_path / "f.npz", fps=15, frames=a["frames"].astype(np.float32), states=a["states"])
    with pytest.raises(TrajectoryFormatError, match="fps"):
        save_trajectory(tmp_path / "f.npz", fps=0, **a)
    with pytest.raises(ValueError, match="JSON"):
        save_trajectory(tmp_path / "f.npz", fps=15, metadata={"x": object()}, **a)
    assert not list(tmp_path.glob("f.npz*")) and not list(tmp_path.glob(".f.npz*"))


def test_frame_step_and_indices_follow_official_rule():
    assert clip_frame_step(15, 4) == 4 and clip_frame_step(12, 4) == 3 and clip_frame_step(30, 4) == 8
    assert clip_frame_step(15, 4, frame_step=2) == 2
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(400):
        idx = sample_clip_indices(40, 8, 4, rng)
        assert np.array_equal(np.diff(idx), np.full(7, 4)) and idx[0] >= 0
        starts.add(int(idx[0]))
    assert starts == set(range(0, 40 - 32))  # the official end index is drawn in [32, 40)
    np.testing.assert_array_equal(sample_clip_indices(40, 8, 4), np.arange(0, 32, 4))
    np.testing.assert_array_equal(sample_clip_indices(32, 8, 4, rng), np.arange(0, 32, 4))
    with pytest.raises(ValueError, match="needs 32 steps"):
        sample_clip_indices(31, 8, 4, rng)


def test_droid_crop_geometry():
    assert droid_crop_box(180, 320) == (0, 38, 180, 243)
    assert droid_crop_box(720, 1280) == (0, 154, 720, 972)
    assert droid_crop_box(64, 64) == (0, 0, 64, 64)  # square frames are kept whole
    frames = torch.randint(0, 256, (2, 18, 32, 3), dtype=torch.uint8)
    out = droid_transform(frames, resolution=8)
    top, left, h, w = droid_crop_box(18, 32)
    crop = frames[:, top : top + h, left : left + w].permute(0, 3, 1, 2).float()
    ref = normalize(F.interpolate(crop, size=(8, 8), mode="bilinear", align_corners=False), IMAGENET_MEAN, IMAGENET_STD)
    assert out.shape == (3, 2, 8, 8)
    torch.testing.assert_close(out, ref.transpose(0, 1))
    assert resize_transform(frames, resolution=8).shape == (3, 2, 8, 8)


def test_blurred_named_transforms():
    frames = torch.randint(0, 256, (2, 18, 18, 3), dtype=torch.uint8)
    rng = np.random.default_rng(0)
    out = make_clip_transform("resize+blur=0.25", resolution=8)(frames, rng)
    torch.testing.assert_close(out, gaussian_blur(resize_transform(frames, resolution=8), 2.0))
    assert parse_transform("droid") == ("droid", 0.0)
    assert parse_transform("center+blur=0.1") == ("center", 0.1)
    for bad in ("nope", "resize+blur=x", "resize+blur=-1", "resize+sharpen=1", "resize+blur"):
        with pytest.raises(ValueError, match="unknown transform"):
            make_clip_transform(bad)


@pytest.fixture
def traj_dir(tmp_path):
    save_trajectory(tmp_path / "a.npz", fps=15.0, **_arrays(40))
    save_trajectory(tmp_path / "sub" / "b.npz", fps=15.0, **_arrays(50, extrinsics=False))
    save_trajectory(tmp_path / "short.npz", fps=15.0, **_arrays(20))  # < 8 frames x step 4
    return tmp_path


def test_dataset_clips_align_frames_states_actions(traj_dir):
    with pytest.warns(SkippedTrajectoryWarning, match="1 trajectories too short"):
        ds = TrajectoryClipDataset(traj_dir, frames=8, fps=4.0, transform=None)
    assert len(ds) == 2 and ds.num_too_short == 1 and ds.num_unreadable == 0
    for key in range(len(ds)):
        item = ds[key]
        idx = item.indices.numpy()
        assert np.array_equal(np.diff(idx), np.full(7, 4))  # 15 Hz at 4 fps -> every 4th step
        np.testing.assert_array_equal(item.clip[:, 0, 0, 0].numpy(), idx)  # frame t has pixel value t
        np.testing.assert_array_equal(item.states[:, 0].numpy(), idx)  # state x = t
        torch.testing.assert_close(item.actions, torch.from_numpy(poses_to_diffs(item.states.numpy())))
        assert item.actions.shape == (7, 7) and item.extrinsics.shape == (8, 6)
    traj = load_trajectory(ds.paths[0])
    item = ds[0]
    np.testing.assert_array_equal(item.extrinsics.numpy(), traj.extrinsics[item.indices.numpy()])
    assert not ds[1].extrinsics.any()  # no extrinsics -> zeros


def test_dataset_transform_rng_and_collate(traj_dir):
    ds = TrajectoryClipDataset([traj_dir / "a.npz", traj_dir / "sub"], frames=4, frame_step=3, resolution=16)
    assert ds[DrawKey(0, 1, 5)].indices.tolist() == ds[DrawKey(0, 1, 5)].indices.tolist()
    starts = {int(ds[DrawKey(0, 0, p)].indices[0]) for p in range(20)}
    assert len(starts) > 1
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch.clip.shape == (2, 3, 4, 16, 16) and batch.clip.dtype == torch.float32
    assert batch.actions.shape == (2, 3, 7) and batch.states.shape == (2, 4, 7) and batch.extrinsics.shape == (2, 4, 6)
    first = TrajectoryClipDataset(traj_dir, frames=4, frame_step=3, random_start=False, transform="center")
    assert len(first) == 3 and first.num_too_short == 0  # 20 steps hold one clip of 4 frames every 3 steps
    assert first[0].indices.tolist() == [0, 3, 6, 9] and first[0].clip.shape == (3, 4, 256, 256)


def test_dataset_with_nothing_usable(tmp_path):
    save_trajectory(tmp_path / "short.npz", fps=15.0, **_arrays(10))
    with pytest.warns(SkippedTrajectoryWarning), pytest.raises(ValueError, match="no usable trajectory"):
        TrajectoryClipDataset(tmp_path, frames=8, fps=4.0)


def test_trajectory_dataclass_validate():
    a = _arrays(5)
    Trajectory(a["frames"], a["states"], 15.0).validate()
    with pytest.raises(TrajectoryFormatError, match="'states'"):
        Trajectory(a["frames"], a["states"][:4], 15.0).validate()


def test_dataset_retries_after_a_failed_read_and_camera_frame(traj_dir):
    ds = TrajectoryClipDataset([traj_dir / "a.npz", traj_dir / "sub" / "b.npz"], frames=4, fps=4.0, transform="resize")
    pickle.loads(pickle.dumps(ds))  # spawned DataLoader workers pickle the dataset
    (traj_dir / "sub" / "b.npz").write_bytes(b"corrupt")
    with pytest.warns(SkippedTrajectoryWarning, match="b.npz"):
        item = ds[1]
    assert item.index == 0 and item.clip.shape == (3, 4, 256, 256)

    cam = TrajectoryClipDataset(traj_dir / "a.npz", frames=4, fps=4.0, transform=None, camera_frame=True)[0]
    traj = load_trajectory(traj_dir / "a.npz")
    idx = cam.indices.numpy()
    expected = to_camera_frame(traj.states[idx].astype(np.float64), traj.extrinsics[idx].astype(np.float64))
    np.testing.assert_allclose(cam.states.numpy(), expected, atol=1e-6)
    torch.testing.assert_close(cam.actions, torch.from_numpy(poses_to_diffs(cam.states.numpy())), atol=1e-6, rtol=0)
