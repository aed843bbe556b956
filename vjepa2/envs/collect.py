"""``vjepa2 collect``: roll out an exploration policy in an environment and write one trajectory file per episode.

Trajectories (``frames`` uint8 ``[T, H, W, 3]``, ``states`` ``[T, 7]``, executed ``actions`` ``[T-1, 7]``, ``fps``)
use the format of :mod:`vjepa2.data.trajectories`, so ``vjepa2 train-ac`` reads them like DROID clips. Envs other
than the Franka tasks (Two-Rooms, Push-T) write their proprioception as ``states`` (``[T, 2]`` / ``[T, 4]``), their
``[T - 1, 2]`` actions (both dims declared in the metadata) and their full simulator state as ``true_states``
(``info["state"]``), from which ``vjepa2 eval-plan`` can reset the env to any recorded step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vjepa2.data.trajectories import save_trajectory

Policy = Callable[[Any, np.random.Generator], np.ndarray]


def make_policy(name: str, noise: float = 0.3) -> Policy:
    """``scripted`` (a noisy task expert: ``noise`` is the chance of a random action) or ``random``.

    Envs with ``scripted_action(rng, noise)`` / ``random_action(rng)`` methods (Two-Rooms, Push-T) use them; the
    Franka tasks use :func:`~vjepa2.envs.franka_tasks.scripted_action` / ``random_action`` (L1 ball).
    """
    from vjepa2.envs import franka_tasks

    def scripted(env: Any, rng: np.random.Generator) -> np.ndarray:
        if hasattr(env, "scripted_action"):
            return env.scripted_action(rng, noise)
        return franka_tasks.scripted_action(env, rng, noise)

    def random(env: Any, rng: np.random.Generator) -> np.ndarray:
        return env.random_action(rng) if hasattr(env, "random_action") else franka_tasks.random_action(rng)

    if name not in ("scripted", "random"):
        raise ValueError(f"unknown policy {name!r}; choose 'scripted' or 'random'")
    return scripted if name == "scripted" else random


def collect_episode(env: Any, policy: Policy, seed: int, steps: int) -> dict[str, Any]:
    """One episode from ``reset(seed)``: frames, states, actions (and ``true_states`` when the env reports
    ``info["state"]``) as arrays, and whether it succeeded."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    frames, states, actions, success = [obs["image"]], [obs["state"]], [], bool(info.get("is_success", False))
    true_states = [info["state"]] if "state" in info else None
    for _ in range(steps):
        action = np.asarray(policy(env, rng), dtype=np.float32)
        obs, _, terminated, _, info = env.step(action)
        frames.append(obs["image"])
        states.append(obs["state"])
        actions.append(action)
        if true_states is not None:
            true_states.append(info["state"])
        success = success or bool(info.get("is_success", False))
        if terminated:
            break
    data = {"frames": np.stack(frames), "states": np.stack(states), "actions": np.stack(actions), "success": success}
    return data | ({"true_states": np.stack(true_states)} if true_states is not None else {})


def collect(
    env_name: str,
    episodes: int,
    out: str | Path,
    policy: str = "scripted",
    noise: float = 0.3,
    image_size: int = 64,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Write ``episodes`` trajectories of ``env_name`` to ``out``; returns their paths (existing ones are kept)."""
    from vjepa2.envs import make

    env = make(env_name, image_size=image_size).unwrapped
    out = Path(out)
    act = make_policy(policy, noise)
    paths, successes = [], 0
    try:
        for ep in tqdm(range(episodes), desc=f"collect {env_name}", disable=not progress):
            path = out / f"{env_name}-{policy}-{seed + ep:06d}.npz"
            if not path.exists():
                data = collect_episode(env, act, seed + ep, steps or env.max_episode_steps)
                meta = {
                    "env": env_name,
                    "policy": policy,
                    "noise": noise,
                    "seed": seed + ep,
                    "success": data["success"],
                    **_dims(data),
                }
                save_trajectory(
                    path, data["frames"], data["states"], fps=getattr(env, "fps", 4.0), actions=data["actions"],
                    metadata=meta, true_states=data.get("true_states"),
                )  # fmt: skip
                successes += data["success"]
            paths.append(path)
    finally:
        env.close()
    return paths


def _dims(data: dict[str, Any]) -> dict[str, int]:
    """``state_dim`` / ``action_dim`` metadata for trajectories whose states or actions are not 7-D poses."""
    dims = {"state_dim": data["states"].shape[-1], "action_dim": data["actions"].shape[-1]}
    return {} if dims == {"state_dim": 7, "action_dim": 7} else dims
