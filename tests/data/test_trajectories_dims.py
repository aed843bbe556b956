"""Trajectories of other envs than the Franka arm (declared ``state_dim`` / ``action_dim``): clips use the stored
actions, stacked over the frame step (DINO-WM's frameskip), for the dataset, the feature cache, stage 1 and stage 2."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vjepa2.data.poses import poses_to_diffs
from vjepa2.data.trajectories import SkippedTrajectoryWarning, StepDims, load_trajectory, save_trajectory
from vjepa2.data.trajectory_dataset import TrajectoryClipDataset, stack_actions
from vjepa2.train.ac_config import ACDataSection, ACModelSection, ACTrainConfig
from vjepa2.train.ac_data import data_dims
from vjepa2.train.distributed import DistWorld
from vjepa2.train.features import FeatureClipDataset, _cache_name
from vjepa2.train.pretrain_config import DataSection, PretrainConfig

T = 31


def _point(path, seed: int = 0, T: int = T, actions: bool = True, fps: float = 10.0, **meta):
    """A 2-D point agent: state x = step index, actions ``[t, 100 + t]`` so a clip's actions reveal their steps."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8)
    states = np.stack([np.arange(T), rng.uniform(size=T)], 1).astype(np.float32)
    acts = np.stack([np.arange(T - 1), 100 + np.arange(T - 1)], 1).astype(np.float32) if actions else None
    meta = {"env": "wall", "state_dim": 2, "action_dim": 2, **meta}
    return save_trajectory(path, frames, states, fps, actions=acts, metadata=meta)


def _pose(path, T: int = T, **meta):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8)
    states = np.concatenate([rng.normal(size=(T, 6)) * 0.1, rng.uniform(size=(T, 1))], 1).astype(np.float32)
    return save_trajectory(path, frames, states, 10.0, actions=np.ones((T - 1, 7), np.float32), metadata=meta)


@pytest.mark.parametrize("step", [1, 5])
@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_clip_actions_are_the_stored_actions_stacked_over_the_frame_step(tmp_path, step, suffix):
    if suffix == ".h5":
        pytest.importorskip("h5py")
    path = _point(tmp_path / f"p{suffix}")
    ds = TrajectoryClipDataset(path, frames=4, fps=None, frame_step=step, transform=None)
    assert (ds.state_dim, ds.action_dim, ds.dims_at(0)) == (2, 2 * step, StepDims(2, 2))
    traj = load_trajectory(path)
    for i in range(3):
        item = ds[0, 0, i]  # (index, epoch, position): three draws of the one trajectory
        idx = item.indices.numpy()
        assert np.all(np.diff(idx) == step) and item.actions.shape == (3, 2 * step) and item.states.shape == (4, 2)
        np.testing.assert_array_equal(item.states.numpy(), traj.states[idx])
        expected = np.concatenate([traj.actions[t : t + step].ravel()[None] for t in idx[:-1]])  # a_t .. a_t+k-1
        np.testing.assert_array_equal(item.actions.numpy(), expected)
        np.testing.assert_array_equal(item.clip.numpy(), traj.frames[idx])


def test_stack_actions_order_matches_the_planners_chunks():
    """Row i holds actions i*k .. i*k+k-1 in turn, as ``chunk_pose_fn`` unflattens ``[..., k * A]`` into (k, A)."""
    actions = np.arange(12.0).reshape(6, 2)
    stacked = stack_actions(actions, 2)
    assert stacked.shape == (2, 6)
    np.testing.assert_array_equal(torch.from_numpy(stacked).unflatten(-1, (3, 2))[1].numpy(), actions[3:])


def test_pose_trajectories_keep_pose_differences_even_when_declared(tmp_path):
    path = _pose(tmp_path / "franka.npz", state_dim=7, action_dim=7)
    ds = TrajectoryClipDataset(path, frames=4, fps=None, frame_step=5, transform=None)
    item = ds[0]
    assert ds.dims_at(0).poses and (ds.state_dim, ds.action_dim) == (7, 7)
    torch.testing.assert_close(item.actions, torch.from_numpy(poses_to_diffs(item.states.numpy())))


def test_declared_dims_without_actions_are_skipped_with_a_reason(tmp_path):
    _point(tmp_path / "a.npz")
    _point(tmp_path / "no-actions.npz", actions=False)
    with pytest.warns(SkippedTrajectoryWarning, match=r"no-actions\.npz.*'actions' is missing"):
        ds = TrajectoryClipDataset(tmp_path, frames=4, fps=None, frame_step=5, transform=None)
    assert [p.endswith("a.npz") for p in ds.paths] == [True] and ds.num_unreadable == 1


def test_widths_must_agree_across_trajectories(tmp_path):
    _point(tmp_path / "a.npz")
    _point(tmp_path / "b.npz", fps=5.0)  # at fps=2: step 5 for a, 3 for b -> 10-D vs 6-D actions
    _pose(tmp_path / "c.npz")
    ds = TrajectoryClipDataset(tmp_path, frames=4, fps=2.0, transform=None)
    with pytest.raises(ValueError, match=r"different action_dims: .*a\.npz 10 .*step 5.*b\.npz 6 "):
        _ = ds.action_dim
    with pytest.raises(ValueError, match=r"different state_dims: .*a\.npz 2 .*c\.npz 7 "):
        _ = ds.state_dim


def test_camera_frame_needs_poses(tmp_path):
    ds = TrajectoryClipDataset(_point(tmp_path / "a.npz"), frames=4, frame_step=1, transform=None, camera_frame=True)
    with pytest.raises(ValueError, match="camera_frame=True needs 7-D pose states"):
        ds[0]


def test_feature_clips_read_the_stored_actions(tmp_path):
    path = _point(tmp_path / "a.npz")
    cache = tmp_path / "cache"
    cache.mkdir()
    feats = np.random.default_rng(0).normal(size=(T, 4, 6)).astype(np.float16)
    np.save(cache / _cache_name(str(path)), feats)
    ds = FeatureClipDataset(str(path), cache, frames=4, fps=None, frame_step=5)
    item, pixels = ds[0, 0, 0], TrajectoryClipDataset(path, frames=4, fps=None, frame_step=5, transform=None)[0, 0, 0]
    np.testing.assert_array_equal(item.clip.numpy(), feats[item.indices.numpy()].astype(np.float32))
    torch.testing.assert_close(item.actions, pixels.actions)
    assert ds.action_dim == 10


def _ac_config(data, **model) -> ACTrainConfig:
    return ACTrainConfig(
        model=ACModelSection(encoder="vit_test", predictor="ac_vit_test", **model),
        data=ACDataSection(trajectories=(str(data),), frames=4, fps=None, frame_step=5, resolution=32),
    )


def test_predictor_widths_come_from_the_data_and_a_mismatch_names_the_file(tmp_path):
    path = _point(tmp_path / "a.npz")
    ds = TrajectoryClipDataset(path, frames=4, fps=None, frame_step=5, transform=None)
    assert data_dims(_ac_config(path), ds) == {"action_dim": 10, "state_dim": 2}
    assert data_dims(_ac_config(path, action_dim=10, state_dim=2), ds) == {"action_dim": 10, "state_dim": 2}
    with pytest.raises(ValueError, match=r"model\.action_dim=7, but the trajectories give 10 \(.*a\.npz: per-step "):
        data_dims(_ac_config(path, action_dim=7), ds)


def test_pretraining_batches_frames_of_different_envs(tmp_path):
    from vjepa2.train.data import is_trajectory_source, pretrain_batches

    _point(tmp_path / "data" / "wall.npz")
    _pose(tmp_path / "data" / "franka.npz")
    assert is_trajectory_source(str(tmp_path / "data"))
    cfg = PretrainConfig()
    cfg = replace(cfg, data=DataSection(datasets=(str(tmp_path / "data"),), frames=4, fps=None, frame_step=2, crop=16,
                                        batch_size=4, num_workers=0, ipe=2))  # fmt: skip
    clips, skipped = next(pretrain_batches(cfg, DistWorld()))
    assert clips.shape == (4, 3, 4, 16, 16) and skipped == 0


def test_collected_push_t_clips(tmp_path):
    """Push-T (gym-pusht): 4-D proprioception states, 2-D relative actions, 10-D at DINO-WM's frameskip 5."""
    pytest.importorskip("gym_pusht")
    from vjepa2.envs.collect import collect

    collect("pusht", 1, tmp_path, image_size=16, steps=11, progress=False)
    ds = TrajectoryClipDataset(tmp_path, frames=2, fps=None, frame_step=5, resolution=16, transform="resize")
    item = ds[0]
    traj = load_trajectory(ds.paths[0])
    assert (ds.state_dim, ds.action_dim) == (4, 10) and item.clip.shape == (3, 2, 16, 16)
    start = int(item.indices[0])
    np.testing.assert_array_equal(item.actions[0].numpy(), traj.actions[start : start + 5].ravel())
