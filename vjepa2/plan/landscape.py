"""Energy landscape of the world model around a recorded transition (paper Fig. 9; official
``notebooks/energy_landscape_example.ipynb``).

From frame ``t`` and its pose, every action of a ``n x n`` grid over two action dims (``(dx, dy)`` by default,
``(dz, dgripper)`` for a grasp; the other dims at the ground-truth action) is rolled out one step in a single
batched predictor call; the energy is the mean L1 distance between the
prediction and the features of frame ``t + 1``. A well-trained model puts the minimum near the ground-truth action
``pose_diff(state_t, state_t1)``. Energy differences between neighbouring actions can be ~1e-4 of the energy,
below bf16 resolution for a weak model: a ``dtype="fp32"`` world model gives a smoother map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa2.data.poses import pose_diff
from vjepa2.plan.world_model import WorldModel

AXES = {"x": 0, "y": 1, "z": 2, "roll": 3, "pitch": 4, "yaw": 5, "gripper": 6}  # action dims by name
UNITS = {"x": "m", "y": "m", "z": "m", "roll": "rad", "pitch": "rad", "yaw": "rad", "gripper": ""}


@dataclass
class Landscape:
    """Energies on a grid of two action dims ``axes`` (e.g. ``("x", "y")``): ``u``, ``v``, ``energy`` are
    ``[n, n]`` (row = second axis, column = first axis); ``action`` ``[7]`` is the ground truth."""

    u: torch.Tensor
    v: torch.Tensor
    energy: torch.Tensor
    action: torch.Tensor
    axes: tuple[str, str] = ("x", "y")

    @property
    def argmin(self) -> tuple[float, float]:
        """The ``(u, v)`` of the lowest energy."""
        i = int(self.energy.argmin())
        return float(self.u.flatten()[i]), float(self.v.flatten()[i])

    @property
    def truth(self) -> tuple[float, float]:
        """The ground-truth action's value on the two axes."""
        return float(self.action[AXES[self.axes[0]]]), float(self.action[AXES[self.axes[1]]])


def action_grid(
    span: float | tuple[float, float],
    n: int,
    axes: tuple[str, str] = ("x", "y"),
    base: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``u, v [n, n]`` over ``[-span_u, span_u] x [-span_v, span_v]`` and the actions ``[n * n, 1, 7]``
    (row-major): ``base`` (zeros by default) with its ``axes`` dims replaced by the grid."""
    su, sv = (span, span) if isinstance(span, (int, float)) else span
    for axis in axes:
        if axis not in AXES:
            raise ValueError(f"unknown action axis {axis!r}; choose from {list(AXES)}")
    v, u = torch.meshgrid(torch.linspace(-sv, sv, n), torch.linspace(-su, su, n), indexing="ij")
    actions = (torch.zeros(7) if base is None else base.float()).repeat(n * n, 1, 1)
    actions[:, 0, AXES[axes[0]]], actions[:, 0, AXES[axes[1]]] = u.flatten(), v.flatten()
    return u, v, actions


def energy_landscape(
    world_model: WorldModel,
    frame_t: torch.Tensor,
    frame_t1: torch.Tensor,
    state_t: torch.Tensor,
    state_t1: torch.Tensor,
    span: float | tuple[float, float] = 0.075,
    n: int = 21,
    axes: tuple[str, str] = ("x", "y"),
) -> Landscape:
    """Sweep two action dims around a recorded transition, the other dims at the ground-truth action.

    Args:
        world_model: the world model.
        frame_t: normalised frame ``[3, H, W]`` at time t.
        frame_t1: normalised frame ``[3, H, W]`` at time t + 1 (the goal).
        state_t: pose ``[7]`` at t.
        state_t1: pose ``[7]`` at t + 1.
        span: the grid covers ``[-span, span]`` on each axis (or one span per axis).
        n: grid points per axis.
        axes: the two swept dims by name (:data:`AXES`), e.g. ``("z", "gripper")`` for a grasp.

    Returns:
        The :class:`Landscape`, with the ground-truth action ``pose_diff(state_t, state_t1)``.
    """
    feats = world_model.encode(torch.stack([frame_t, frame_t1]))  # [2, 1, HW, D]
    action = pose_diff(torch.as_tensor(state_t).double(), torch.as_tensor(state_t1).double()).float()
    u, v, actions = action_grid(span, n, axes, base=action)
    s0 = torch.as_tensor(state_t, dtype=torch.float32).view(1, 1, 7)
    energy = world_model.energy(world_model.rollout(feats[:1], s0, actions), feats[1, 0])
    return Landscape(u, v, energy.cpu().view(n, n), action, tuple(axes))


def plot_landscape(result: Landscape, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG heat map of the landscape with the ground-truth action (star) and the argmin (cross) marked."""
    from matplotlib.figure import Figure  # lazy: matplotlib is optional

    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(result.u.numpy(), result.v.numpy(), result.energy.numpy(), shading="nearest")
    fig.colorbar(mesh, ax=ax, label="energy (mean L1)")
    ax.plot(*result.truth, "*", color="white", markeredgecolor="black", markersize=15, label="ground truth")
    ax.plot(*result.argmin, "x", color="red", markersize=11, markeredgewidth=2.5, label="argmin")
    (a, b), same_units = result.axes, UNITS[result.axes[0]] == UNITS[result.axes[1]]
    label = {axis: f"delta {axis}" + (f" ({UNITS[axis]})" if UNITS[axis] else "") for axis in (a, b)}
    ax.set(xlabel=label[a], ylabel=label[b], title=title or "energy landscape")
    ax.set_aspect("equal" if same_units else "auto")
    ax.locator_params(nbins=5)
    ax.legend(loc="upper right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def transition_from_trajectory(path: str | Path, index: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Frames ``[2, H, W, 3]`` and states ``[2, 7]`` at steps ``index`` and ``index + 1`` of a trajectory file."""
    from vjepa2.data.trajectories import load_trajectory

    traj = load_trajectory(path)
    if not 0 <= index < len(traj) - 1:
        raise ValueError(f"{path}: --index must be in [0, {len(traj) - 2}] for a trajectory of {len(traj)} steps")
    t = slice(index, index + 2)
    return traj.frames[t], traj.states[t].astype(np.float32), f"{path} steps {index} -> {index + 1}"


def transition_from_env(name: str, seed: int, image_size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """One step of the scripted expert after ``reset(seed)``, its dz, rotation and gripper zeroed so that the
    ground-truth action lies in the ``(dx, dy)`` plane that the landscape sweeps."""
    from vjepa2.envs import make, scripted_action

    env = make(name, image_size=image_size).unwrapped
    try:
        obs0, _ = env.reset(seed=seed)
        action = scripted_action(env, np.random.default_rng(seed), noise=0.0)
        action[2:] = 0.0
        obs1, *_ = env.step(action)
    finally:
        env.close()
    frames = np.stack([obs0["image"], obs1["image"]])
    states = np.stack([obs0["state"], obs1["state"]]).astype(np.float32)
    return frames, states, f"{name} seed {seed}, scripted action ({action[0]:+.4f}, {action[1]:+.4f}, 0)"


def energy_at(world_model: WorldModel, frames: torch.Tensor, state: torch.Tensor, action: torch.Tensor) -> float:
    """Energy of one action: frames ``[2, 3, H, W]`` (t, t + 1), ``state`` ``[7]`` at t, ``action`` ``[7]``."""
    feats = world_model.encode(frames)  # [2, 1, HW, D]
    pred = world_model.rollout(feats[:1], state.view(1, 1, 7), action.view(1, 1, 7).float())
    return float(world_model.energy(pred, feats[1, 0])[0])
