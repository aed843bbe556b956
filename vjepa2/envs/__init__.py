"""Simulated environments for planning with V-JEPA 2-AC.

Importing this package registers the Gymnasium ids below (no simulator starts until an env is made)::

    import gymnasium as gym
    import vjepa2.envs

    env = gym.make("vjepa2/FrankaReach-v0", image_size=64)  # or vjepa2.envs.make("franka-reach")
    obs, info = env.reset(seed=0)
    goals = env.unwrapped.goal_images()

:data:`ENVS` maps the short names used by the command line to Gymnasium ids. Needs ``pybullet`` and
``gymnasium``.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from vjepa2.envs.franka_tasks import (
    TASKS,
    compute_new_pose,
    matrix_to_euler,
    random_action,
    sample_l1_ball,
    scripted_action,
)

ENVS: dict[str, str] = {
    "franka-reach": "vjepa2/FrankaReach-v0",
    "franka-grasp": "vjepa2/FrankaGrasp-v0",
    "franka-reach-with-object": "vjepa2/FrankaReachWithObject-v0",
    "franka-pick-and-place": "vjepa2/FrankaPickPlace-v0",
}
ENV_TASKS: dict[str, str] = {  # Gymnasium id -> FrankaEnv task
    "vjepa2/FrankaReach-v0": "reach",
    "vjepa2/FrankaGrasp-v0": "grasp",
    "vjepa2/FrankaReachWithObject-v0": "reach_with_object",
    "vjepa2/FrankaPickPlace-v0": "pick_and_place",
}

__all__ = [
    "ENVS",
    "ENV_TASKS",
    "TASKS",
    "FrankaEnv",
    "compute_new_pose",
    "make",
    "matrix_to_euler",
    "random_action",
    "register_envs",
    "sample_l1_ball",
    "scripted_action",
]


def register_envs() -> None:
    """Registers the Franka ids with Gymnasium (idempotent)."""
    for env_id, task in ENV_TASKS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="vjepa2.envs.franka:FrankaEnv",
                kwargs={"task": task},
                max_episode_steps=TASKS[task].max_episode_steps,
            )


def make(name: str, **kwargs: Any) -> gym.Env:
    """Makes an env from a short name of :data:`ENVS` or a Gymnasium id; ``kwargs`` go to ``gym.make``."""
    register_envs()
    return gym.make(ENVS.get(name, name), **kwargs)


def __getattr__(name: str) -> Any:
    if name == "FrankaEnv":  # lazy: importing pybullet is not needed to register
        return importlib.import_module("vjepa2.envs.franka").FrankaEnv
    raise AttributeError(f"module 'vjepa2.envs' has no attribute {name!r}")


register_envs()
