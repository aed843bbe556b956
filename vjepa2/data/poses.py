"""End-effector pose arithmetic of V-JEPA 2-AC: Euler angles, pose deltas (actions) and their integration.

A pose (robot state) is 7 numbers ``[x, y, z, roll, pitch, yaw, gripper]``; the angles are Euler angles in scipy's
lowercase ``"xyz"`` convention, i.e. **extrinsic** rotations about the fixed x, then y, then z axes, so
``R(a, b, c) = Rz(c) @ Ry(b) @ Rx(a)``. An action is the delta between two consecutive poses, as in the official
``poses_to_diffs`` (``app/vjepa_droid/droid.py``) and ``compute_new_pose`` (``notebooks/utils/mpc_utils.py``):

- ``dxyz = xyz_{t+1} - xyz_t``;
- ``dR = R_{t+1} @ R_t^T`` (a rotation in the world frame, applied on the left), back to extrinsic xyz Euler angles;
- ``dg = g_{t+1} - g_t``; integrating clips the gripper to [0, 1].

Nothing is normalised or scaled. Every function takes numpy arrays or torch tensors of any batch shape and returns
the same kind, dtype and device; the arithmetic runs in float64 (float32 on MPS). Euler angles come back in scipy's
canonical ranges (first and third in [-pi, pi], middle in [-pi/2, pi/2]); at gimbal lock (middle angle +-pi/2) the
third angle is set to 0, as scipy does, without scipy's warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# Middle-angle distance from +-pi/2 below which the first and third angles are not separable (scipy uses 1e-7).
_GIMBAL_EPS = 1e-7


def _to_torch(*xs: np.ndarray | torch.Tensor) -> tuple[list[torch.Tensor], Callable[[torch.Tensor], Array]]:
    """Float64 tensors of the inputs and a function that converts a result back to the first input's kind."""
    first = xs[0]
    if isinstance(first, torch.Tensor):
        device, dtype = first.device, first.dtype if first.is_floating_point() else torch.float32
        work = torch.float32 if device.type == "mps" else torch.float64
        tensors = [torch.as_tensor(x, device=device).to(work) for x in xs]
        return tensors, lambda y: y.to(dtype)
    dtype = first.dtype if np.issubdtype(np.asarray(first).dtype, np.floating) else np.float64
    tensors = [torch.from_numpy(np.asarray(x, dtype=np.float64)) for x in xs]
    return tensors, lambda y: y.numpy().astype(dtype, copy=False)


def _check_last(x: np.ndarray | torch.Tensor, size: int, name: str) -> None:
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{name} must have shape [..., {size}], got {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------------------- rotations


def _euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` extrinsic xyz angles -> ``[..., 3, 3]`` matrices ``Rz(c) @ Ry(b) @ Rx(a)``."""
    ca, cb, cc = angles.cos().unbind(-1)
    sa, sb, sc = angles.sin().unbind(-1)
    rows = [
        (cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa),
        (sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa),
        (-sb, cb * sa, cb * ca),
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _matrix_to_euler(m: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` rotation matrices -> ``[..., 3]`` extrinsic xyz angles (scipy's canonical solution)."""
    cos_b = torch.hypot(m[..., 2, 1], m[..., 2, 2])
    b = torch.atan2(-m[..., 2, 0], cos_b)
    a = torch.atan2(m[..., 2, 1], m[..., 2, 2])
    c = torch.atan2(m[..., 1, 0], m[..., 0, 0])
    # Gimbal lock: only a -+ c is defined; scipy keeps it all in the first angle and sets the third to 0.
    locked = (b.abs() - math.pi / 2).abs() <= _GIMBAL_EPS
    a_locked = torch.atan2(torch.sign(-m[..., 2, 0]) * m[..., 0, 1], m[..., 1, 1])
    a = torch.where(locked, a_locked, a)
    c = torch.where(locked, torch.zeros_like(c), c)
    return torch.stack([a, b, c], dim=-1)


def euler_to_matrix(angles: Array) -> Array:
    """Rotation matrices of extrinsic xyz Euler angles (scipy ``Rotation.from_euler("xyz", angles).as_matrix()``).

    Args:
        angles: ``[..., 3]`` radians (about x, y, z).

    Returns:
        ``[..., 3, 3]``.
    """
    _check_last(angles, 3, "angles")
    (a,), back = _to_torch(angles)
    return back(_euler_to_matrix(a))


def matrix_to_euler(matrix: Array, wrap_roll: bool = False) -> Array:
    """Extrinsic xyz Euler angles of rotation matrices (scipy ``Rotation.from_matrix(m).as_euler("xyz")``).

    Args:
        matrix: ``[..., 3, 3]`` proper rotation matrices.
        wrap_roll: roll in ``[0, 2pi)`` (the Franka env's reporting range: its pointing-down roll is pi, where
            [-pi, pi] would jump) instead of [-pi, pi].

    Returns:
        ``[..., 3]`` radians: first and third in [-pi, pi], middle in [-pi/2, pi/2].
    """
    if matrix.ndim < 2 or tuple(matrix.shape[-2:]) != (3, 3):
        raise ValueError(f"matrix must have shape [..., 3, 3], got {tuple(matrix.shape)}")
    (m,), back = _to_torch(matrix)
    euler = back(_matrix_to_euler(m))
    return wrap_euler(euler) if wrap_roll else euler


def wrap_euler(euler: Array) -> Array:
    """Euler angles ``[..., 3]`` with the roll in ``[0, 2pi)`` (a copy)."""
    out = euler.clone() if isinstance(euler, torch.Tensor) else np.array(euler, dtype=np.float64)
    out[..., 0] = out[..., 0] % (2 * math.pi)
    return out


def sample_l1_ball(rng: np.random.Generator, radius: float, size: int = 3) -> np.ndarray:
    """A point drawn uniformly from the L1 ball of ``radius`` in ``size`` dimensions (a flat Dirichlet point,
    one slack coordinate, random signs)."""
    e = rng.exponential(size=size + 1)
    return radius * rng.choice([-1.0, 1.0], size=size) * e[:size] / e.sum()


def wrap_angle(angles: Array) -> Array:
    """Angles wrapped into [-pi, pi)."""
    return (angles + math.pi) % (2 * math.pi) - math.pi


# ---------------------------------------------------------------------------------------------------- poses


def _pose_diff(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    rot = _euler_to_matrix(end[..., 3:6]) @ _euler_to_matrix(start[..., 3:6]).transpose(-1, -2)
    return torch.cat([end[..., :3] - start[..., :3], _matrix_to_euler(rot), end[..., 6:] - start[..., 6:]], dim=-1)


def _new_pose(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    state, action = torch.broadcast_tensors(state, action)
    rot = _euler_to_matrix(action[..., 3:6]) @ _euler_to_matrix(state[..., 3:6])
    gripper = (state[..., 6:] + action[..., 6:]).clamp(0.0, 1.0)
    return torch.cat([state[..., :3] + action[..., :3], _matrix_to_euler(rot), gripper], dim=-1)


def pose_diff(start: Array, end: Array) -> Array:
    """The action taking pose ``start`` to pose ``end`` (official notebook ``poses_to_diff``).

    Args:
        start: ``[..., 7]`` poses.
        end: ``[..., 7]`` poses (broadcast against ``start``).

    Returns:
        ``[..., 7]``: ``[dxyz, euler(R_end @ R_start^T), dgripper]``.
    """
    _check_last(start, 7, "start")
    _check_last(end, 7, "end")
    (s, e), back = _to_torch(start, end)
    return back(_pose_diff(s, e))


def poses_to_diffs(states: Array) -> Array:
    """Actions between consecutive poses of a trajectory (official ``poses_to_diffs``).

    Args:
        states: ``[..., T, 7]`` poses, ``T >= 1``.

    Returns:
        ``[..., T - 1, 7]`` actions; ``actions[t]`` takes ``states[t]`` to ``states[t + 1]``.
    """
    _check_last(states, 7, "states")
    if states.ndim < 2:
        raise ValueError(f"states must have shape [..., T, 7], got {tuple(states.shape)}")
    (s,), back = _to_torch(states)
    return back(_pose_diff(s[..., :-1, :], s[..., 1:, :]))


def compute_new_pose(state: Array, action: Array, wrap_roll: bool = False) -> Array:
    """Apply an action to a pose (official ``compute_new_pose``), batched: e.g. ``[S, 7]`` CEM candidates.

    Args:
        state: ``[..., 7]`` poses.
        action: ``[..., 7]`` actions (broadcast against ``state``).
        wrap_roll: the new roll in ``[0, 2pi)`` (see :func:`matrix_to_euler`).

    Returns:
        ``[..., 7]``: ``xyz + dxyz``, ``euler(R(dtheta) @ R(theta))``, ``clip(g + dg, 0, 1)``.
    """
    _check_last(state, 7, "state")
    _check_last(action, 7, "action")
    (s, a), back = _to_torch(state, action)
    new = back(_new_pose(s, a))
    if wrap_roll:
        new[..., 3:6] = wrap_euler(new[..., 3:6])
    return new


def rollout_poses(state: Array, actions: Array) -> Array:
    """Integrate a sequence of actions from a start pose with :func:`compute_new_pose`.

    Args:
        state: ``[..., 7]`` start poses.
        actions: ``[..., H, 7]`` actions (batch dims broadcast against ``state``).

    Returns:
        ``[..., H + 1, 7]`` poses, the start pose first.
    """
    _check_last(state, 7, "state")
    _check_last(actions, 7, "actions")
    if actions.ndim < 2:
        raise ValueError(f"actions must have shape [..., H, 7], got {tuple(actions.shape)}")
    (s, a), back = _to_torch(state, actions)
    batch = torch.broadcast_shapes(s.shape[:-1], a.shape[:-2])
    poses = [s.expand(*batch, 7)]
    for h in range(a.shape[-2]):
        poses.append(_new_pose(poses[-1], a[..., h, :]))
    return back(torch.stack(poses, dim=-2))


def to_camera_frame(states: Array, extrinsics: Array) -> Array:
    """Express poses in a camera's frame, ``inv(E) @ P`` (the official, off-by-default ``camera_frame`` option).

    Args:
        states: ``[..., 7]`` poses in the robot base frame.
        extrinsics: ``[..., 6]`` camera poses ``[xyz, extrinsic xyz Euler]`` in the same frame.

    Returns:
        ``[..., 7]`` poses relative to the camera; the gripper is unchanged.
    """
    _check_last(states, 7, "states")
    _check_last(extrinsics, 6, "extrinsics")
    (p, e), back = _to_torch(states, extrinsics)
    rot_e_inv = _euler_to_matrix(e[..., 3:6]).transpose(-1, -2)
    xyz = (rot_e_inv @ (p[..., :3] - e[..., :3]).unsqueeze(-1)).squeeze(-1)
    euler = _matrix_to_euler(rot_e_inv @ _euler_to_matrix(p[..., 3:6]))
    return back(torch.cat([xyz, euler, p[..., 6:]], dim=-1))
