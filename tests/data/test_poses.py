import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vjepa2.data.poses import (
    compute_new_pose,
    euler_to_matrix,
    matrix_to_euler,
    pose_diff,
    poses_to_diffs,
    rollout_poses,
    to_camera_frame,
    wrap_angle,
)


def _canonical_angles(rng, n):
    """Extrinsic xyz angles in scipy's canonical ranges, away from gimbal lock."""
    return np.stack([rng.uniform(-3.1, 3.1, n), rng.uniform(-1.5, 1.5, n), rng.uniform(-3.1, 3.1, n)], axis=-1)


def _random_states(rng, n):
    xyz = rng.normal(0.0, 0.3, (n, 3))
    return np.concatenate([xyz, _canonical_angles(rng, n), rng.uniform(0.0, 1.0, (n, 1))], axis=-1)


def _ref_poses_to_diffs(states):
    """scipy reference, written from the definition (official ``poses_to_diffs``)."""
    rots = Rotation.from_euler("xyz", states[:, 3:6])
    drot = (rots[1:] * rots[:-1].inv()).as_euler("xyz")  # R_{t+1} @ R_t^T
    return np.concatenate([np.diff(states[:, :3], axis=0), drot, np.diff(states[:, 6:], axis=0)], axis=1)


def _ref_compute_new_pose(state, action):
    rot = (Rotation.from_euler("xyz", action[:, 3:6]) * Rotation.from_euler("xyz", state[:, 3:6])).as_euler("xyz")
    return np.concatenate([state[:, :3] + action[:, :3], rot, np.clip(state[:, 6:] + action[:, 6:], 0, 1)], axis=1)


def test_euler_to_matrix_is_scipy_extrinsic_xyz():
    angles = np.random.default_rng(0).uniform(-4, 4, (64, 3))
    ref = Rotation.from_euler("xyz", angles).as_matrix()
    np.testing.assert_allclose(euler_to_matrix(angles), ref, atol=1e-12)
    # extrinsic x, y, z == Rz @ Ry @ Rx, which is not scipy's intrinsic "XYZ"
    assert not np.allclose(ref, Rotation.from_euler("XYZ", angles).as_matrix())
    out = euler_to_matrix(torch.tensor(angles, dtype=torch.float32))
    assert out.dtype == torch.float32 and out.shape == (64, 3, 3)
    torch.testing.assert_close(out, torch.tensor(ref, dtype=torch.float32))


def test_matrix_to_euler_matches_scipy_including_gimbal_lock():
    rots = Rotation.random(200, random_state=1)
    locked = Rotation.from_euler("xyz", [[0.3, np.pi / 2, 0.2], [0.3, -np.pi / 2, 0.2], [-2.0, np.pi / 2, 1.0]])
    matrices = np.concatenate([rots.as_matrix(), locked.as_matrix()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy warns at gimbal lock
        ref = Rotation.from_matrix(matrices).as_euler("xyz")
    np.testing.assert_allclose(matrix_to_euler(matrices), ref, atol=1e-9)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(matrices)), matrices, atol=1e-9)


def test_euler_round_trip_in_canonical_range():
    angles = _canonical_angles(np.random.default_rng(2), 100)
    np.testing.assert_allclose(matrix_to_euler(euler_to_matrix(angles)), angles, atol=1e-9)


def test_poses_to_diffs_matches_scipy_reference():
    states = _random_states(np.random.default_rng(3), 20)
    diffs = poses_to_diffs(states)
    assert diffs.shape == (19, 7)
    np.testing.assert_allclose(diffs, _ref_poses_to_diffs(states), atol=1e-9)
    np.testing.assert_allclose(pose_diff(states[:-1], states[1:]), diffs, atol=1e-12)
    batched = poses_to_diffs(torch.tensor(np.stack([states, states[::-1].copy()])))
    torch.testing.assert_close(batched[1], torch.tensor(_ref_poses_to_diffs(states[::-1].copy())))


def test_compute_new_pose_inverts_poses_to_diffs():
    states = _random_states(np.random.default_rng(4), 30)
    diffs = poses_to_diffs(states)
    nxt = compute_new_pose(states[:-1], diffs)
    np.testing.assert_allclose(nxt[:, :3], states[1:, :3], atol=1e-12)
    np.testing.assert_allclose(wrap_angle(nxt[:, 3:6] - states[1:, 3:6]), 0.0, atol=1e-9)
    np.testing.assert_allclose(nxt[:, 6], states[1:, 6], atol=1e-12)
    np.testing.assert_allclose(rollout_poses(states[0], diffs), states, atol=1e-9)


def test_compute_new_pose_batched_torch_matches_scipy_reference():
    rng = np.random.default_rng(5)
    state = _random_states(rng, 1)
    actions = np.concatenate(
        [rng.uniform(-0.075, 0.075, (300, 3)), rng.normal(0, 0.2, (300, 3)), rng.normal(0, 1, (300, 1))], 1
    )
    state, actions = state.astype(np.float32), actions.astype(np.float32)  # the reference sees the same inputs
    ref = _ref_compute_new_pose(np.repeat(state, 300, axis=0).astype(np.float64), actions.astype(np.float64))
    out = compute_new_pose(torch.from_numpy(state), torch.from_numpy(actions))
    assert out.shape == (300, 7) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor(ref, dtype=torch.float32), atol=1e-5, rtol=0)
    assert out[:, 6].min() >= 0 and out[:, 6].max() <= 1  # gripper clipped


def test_rollout_poses_batched_candidates():
    rng = np.random.default_rng(6)
    state = torch.tensor(_random_states(rng, 1)[0])
    actions = torch.tensor(rng.uniform(-0.05, 0.05, (10, 2, 7)))  # [S, H, 7]
    poses = rollout_poses(state, actions)
    assert poses.shape == (10, 3, 7)
    torch.testing.assert_close(poses[:, 2], compute_new_pose(compute_new_pose(state, actions[:, 0]), actions[:, 1]))


def test_to_camera_frame_is_inverse_extrinsics_times_pose():
    rng = np.random.default_rng(7)
    states, extrinsics = _random_states(rng, 5), _random_states(rng, 5)[:, :6]

    def homogeneous(p):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = Rotation.from_euler("xyz", p[3:6]).as_matrix(), p[:3]
        return T

    out = to_camera_frame(states, extrinsics)
    for p, e, o in zip(states, extrinsics, out, strict=True):
        np.testing.assert_allclose(homogeneous(o), np.linalg.inv(homogeneous(e)) @ homogeneous(p), atol=1e-9)
        assert o[6] == p[6]


def test_types_and_shape_errors():
    states = np.zeros((4, 7), np.float32)
    assert poses_to_diffs(states).dtype == np.float32
    assert isinstance(compute_new_pose(states[0], states[1]), np.ndarray)
    with pytest.raises(ValueError, match=r"\[\.\.\., 7\]"):
        poses_to_diffs(np.zeros((4, 6)))
    with pytest.raises(ValueError, match="3, 3"):
        matrix_to_euler(np.zeros((2, 3)))
