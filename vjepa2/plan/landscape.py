"""Energy landscape of the world model around a recorded transition (paper Fig. 9; official
``notebooks/energy_landscape_example.ipynb``).

From frame ``t`` and its pose, every action of a ``n x n`` grid of ``(dx, dy)`` (``dz``, rotation and gripper 0)
is rolled out one step in a single batched predictor call; the energy is the mean L1 distance between the
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


@dataclass
class Landscape:
    """Energies on a grid: ``dx``, ``dy``, ``energy`` are ``[n, n]`` (row = dy, column = dx); ``action`` ``[7]``."""

    dx: torch.Tensor
    dy: torch.Tensor
    energy: torch.Tensor
    action: torch.Tensor

    @property
    def argmin(self) -> tuple[float, float]:
        """``(dx, dy)`` of the lowest energy."""
        i = int(self.energy.argmin())
        return float(self.dx.flatten()[i]), float(self.dy.flatten()[i])


def action_grid(span: float, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``dx, dy [n, n]`` over ``[-span, span]^2`` and the actions ``[n * n, 1, 7]`` (row-major)."""
    xs = torch.linspace(-span, span, n)
    dy, dx = torch.meshgrid(xs, xs, indexing="ij")
    actions = torch.zeros(n * n, 1, 7)
    actions[:, 0, 0], actions[:, 0, 1] = dx.flatten(), dy.flatten()
    return dx, dy, actions


def energy_landscape(
    world_model: WorldModel,
    frame_t: torch.Tensor,
    frame_t1: torch.Tensor,
    state_t: torch.Tensor,
    state_t1: torch.Tensor,
    span: float = 0.075,
    n: int = 21,
) -> Landscape:
    """Sweep ``(dx, dy)`` around a recorded transition.

    Args:
        world_model: the world model.
        frame_t: normalised frame ``[3, H, W]`` at time t.
        frame_t1: normalised frame ``[3, H, W]`` at time t + 1 (the goal).
        state_t: pose ``[7]`` at t.
        state_t1: pose ``[7]`` at t + 1.
        span: the grid covers ``[-span, span]`` in both dx and dy.
        n: grid points per axis.

    Returns:
        The :class:`Landscape`, with the ground-truth action ``pose_diff(state_t, state_t1)``.
    """
    feats = world_model.encode(torch.stack([frame_t, frame_t1]))  # [2, 1, HW, D]
    dx, dy, actions = action_grid(span, n)
    s0 = torch.as_tensor(state_t, dtype=torch.float32).view(1, 1, 7)
    energy = world_model.energy(world_model.rollout(feats[:1], s0, actions), feats[1, 0])
    action = pose_diff(torch.as_tensor(state_t).double(), torch.as_tensor(state_t1).double()).float()
    return Landscape(dx, dy, energy.cpu().view(n, n), action)


def plot_landscape(result: Landscape, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG heat map of the landscape with the ground-truth action (star) and the argmin (cross) marked."""
    from matplotlib.figure import Figure  # lazy: matplotlib is optional

    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(result.dx.numpy(), result.dy.numpy(), result.energy.numpy(), shading="nearest")
    fig.colorbar(mesh, ax=ax, label="energy (mean L1)")
    gt = result.action.tolist()
    ax.plot(gt[0], gt[1], "*", color="white", markeredgecolor="black", markersize=15, label="ground truth")
    ax.plot(*result.argmin, "x", color="red", markersize=11, markeredgewidth=2.5, label="argmin")
    ax.set(xlabel="delta x (m)", ylabel="delta y (m)", title=title or "energy landscape", aspect="equal")
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
