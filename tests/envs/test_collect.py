"""``vjepa2 collect``: trajectory files, actions consistent with the recorded poses, resumable, bounded actions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet")
pytest.importorskip("gymnasium")

from vjepa2.cli import main  # noqa: E402
from vjepa2.data.poses import poses_to_diffs  # noqa: E402
from vjepa2.data.trajectories import load_trajectory
from vjepa2.data.trajectory_dataset import TrajectoryClipDataset
from vjepa2.envs.collect import collect  # noqa: E402
from vjepa2.envs.franka_tasks import ACTION_RADIUS, WORKSPACE_HIGH, WORKSPACE_LOW  # noqa: E402

STEPS = 6


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    out = tmp_path_factory.mktemp("scripted")
    return collect("franka-grasp", 3, out, steps=STEPS, image_size=48, progress=False)


def test_writes_one_file_per_episode_with_consistent_shapes(scripted):
    assert [p.name for p in scripted] == [f"franka-grasp-scripted-{i:06d}.npz" for i in range(3)]
    for i, path in enumerate(scripted):
        traj = load_trajectory(path)
        assert traj.frames.shape == (STEPS + 1, 48, 48, 3) and traj.frames.dtype == np.uint8
        assert traj.states.shape == (STEPS + 1, 7) and traj.actions.shape == (STEPS, 7)
        assert traj.fps == 4.0 and traj.metadata["seed"] == i and traj.metadata["policy"] == "scripted"
    frames = [load_trajectory(p).frames[0] for p in scripted]
    assert not np.array_equal(frames[0], frames[1])  # seeds give different layouts


def test_actions_match_pose_differences(scripted):
    """The executed action vs ``poses_to_diffs`` of the recorded states, up to the controller's tracking error
    (contacts with the cube or the table can block a move, so most steps, not all, must track within 1 cm)."""
    errors = []
    for path in scripted:
        traj = load_trajectory(path)
        diffs = poses_to_diffs(traj.states.astype(np.float64))
        target = traj.states[:-1, :3] + traj.actions[:, :3]
        inside = np.all((target > WORKSPACE_LOW) & (target < WORKSPACE_HIGH), axis=1)  # no workspace clipping
        errors.append(np.abs(diffs[inside, :3] - traj.actions[inside, :3]).max(1))
        np.testing.assert_allclose(diffs[:, 3:6], 0.0, atol=0.05)  # rotation is commanded fixed
        gripper = np.clip(traj.states[:-1, 6] + traj.actions[:, 6], 0.0, 1.0)  # the state holds the command
        np.testing.assert_allclose(traj.states[1:, 6], gripper, atol=1e-6)
    errors = np.concatenate(errors)
    assert len(errors) >= STEPS and np.mean(errors < 0.01) >= 0.8 and np.median(errors) < 0.002


def test_existing_files_are_kept(scripted, tmp_path):
    first = collect("franka-reach", 2, tmp_path, steps=2, image_size=32, progress=False)
    before = {p: p.read_bytes() for p in first}
    first[0].write_bytes(b"kept")  # a file that exists is never rewritten, whatever it holds
    paths = collect("franka-reach", 3, tmp_path, steps=2, image_size=32, progress=False)
    assert paths[:2] == first and paths[2].exists() and len(list(tmp_path.iterdir())) == 3
    assert first[0].read_bytes() == b"kept" and first[1].read_bytes() == before[first[1]]


def test_random_policy_stays_in_the_l1_ball(tmp_path, capsys):
    argv = ["collect", "--env", "franka-reach", "--episodes", "2", "--out", str(tmp_path), "--policy", "random"]
    assert main([*argv, "--steps", "8", "--image-size", "32", "--seed", "5"]) == 0
    assert "2 trajectories" in capsys.readouterr().out
    actions = np.concatenate([load_trajectory(p).actions for p in sorted(tmp_path.glob("*.npz"))])
    assert actions.shape == (16, 7) and sorted(p.name[-10:-4] for p in tmp_path.iterdir()) == ["000005", "000006"]
    assert np.abs(actions[:, :3]).sum(1).max() <= ACTION_RADIUS + 1e-6
    assert np.all(actions[:, 3:6] == 0) and np.abs(actions[:, 6]).max() <= 1.0


def test_dataset_reads_collected_trajectories(scripted):
    data = TrajectoryClipDataset([str(p) for p in scripted], frames=4, fps=None, frame_step=1, resolution=32)
    item = data[0]
    assert item.clip.shape == (3, 4, 32, 32) and item.states.shape == (4, 7) and item.actions.shape == (3, 7)
    np.testing.assert_allclose(item.actions, poses_to_diffs(item.states), atol=1e-5)
