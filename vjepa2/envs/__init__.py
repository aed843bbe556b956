"""Simulated environments for planning with V-JEPA 2-AC: the pybullet Franka tabletop, and the planning benchmarks
of the latent world-model literature, Two-Rooms / Wall (:mod:`.wall`, numpy) and Push-T (:mod:`.pusht`, gym-pusht).

Importing this package registers the Gymnasium ids below (no simulator starts until an env is made)::

    import gymnasium as gym
    import vjepa2.envs

    env = gym.make("vjepa2/FrankaReach-v0", image_size=64)  # or vjepa2.envs.make("franka-reach")
    obs, info = env.reset(seed=0)
    goals = env.unwrapped.goal_images()

:data:`ENVS` maps the short names used by the command line to Gymnasium ids (:data:`FRANKA_ENVS`, the Franka tasks
of ``vjepa2 plan``, and :data:`BENCHMARK_ENVS`, those of ``vjepa2 eval-plan``). The Franka envs need ``pybullet``,
Push-T needs ``gym-pusht`` (``pip install "vjepa2[pusht]"``); all need ``gymnasium``.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from vjepa2.envs.franka_tasks import (
    TASKS,
    random_action,
    scripted_action,
)

FRANKA_ENVS: dict[str, str] = {
    "franka-reach": "vjepa2/FrankaReach-v0",
    "franka-grasp": "vjepa2/FrankaGrasp-v0",
    "franka-reach-with-object": "vjepa2/FrankaReachWithObject-v0",
    "franka-pick-and-place": "vjepa2/FrankaPickPlace-v0",
}
BENCHMARK_ENVS: dict[str, str] = {
    "wall": "vjepa2/Wall-v0",  # DINO-WM's fixed wall
    "two-rooms": "vjepa2/Wall-v0",
    "wall-random": "vjepa2/WallRandom-v0",  # DINO-WM's WallRandom: wall and door drawn per episode
    "pusht": "vjepa2/PushT-v0",
}
ENVS: dict[str, str] = {**FRANKA_ENVS, **BENCHMARK_ENVS}
BENCHMARK_EPISODE_STEPS: dict[str, int] = {"vjepa2/Wall-v0": 100, "vjepa2/WallRandom-v0": 100, "vjepa2/PushT-v0": 200}
BENCHMARK_SPECS: dict[str, tuple[str, dict[str, Any]]] = {  # Gymnasium id -> entry point, kwargs
    "vjepa2/Wall-v0": ("vjepa2.envs.wall:WallEnv", {"random_wall": False}),
    "vjepa2/WallRandom-v0": ("vjepa2.envs.wall:WallEnv", {"random_wall": True}),
    "vjepa2/PushT-v0": ("vjepa2.envs.pusht:PushTEnv", {}),
}
ENV_TASKS: dict[str, str] = {  # Gymnasium id -> FrankaEnv task
    "vjepa2/FrankaReach-v0": "reach",
    "vjepa2/FrankaGrasp-v0": "grasp",
    "vjepa2/FrankaReachWithObject-v0": "reach_with_object",
    "vjepa2/FrankaPickPlace-v0": "pick_and_place",
}

__all__ = [
    "BENCHMARK_ENVS",
    "ENVS",
    "ENV_TASKS",
    "FRANKA_ENVS",
    "TASKS",
    "FrankaEnv",
    "env_id",
    "make",
    "random_action",
    "register_envs",
    "scripted_action",
]


def register_envs() -> None:
    """Registers the Franka and benchmark ids with Gymnasium (idempotent; nothing is imported until ``make``)."""
    for gym_id, task in ENV_TASKS.items():
        if gym_id not in gym.registry:
            gym.register(
                gym_id,
                entry_point="vjepa2.envs.franka:FrankaEnv",
                kwargs={"task": task},
                max_episode_steps=TASKS[task].max_episode_steps,
            )
    for gym_id, (entry_point, kwargs) in BENCHMARK_SPECS.items():
        if gym_id not in gym.registry:
            steps = BENCHMARK_EPISODE_STEPS[gym_id]
            gym.register(gym_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=steps)


def env_id(name: str) -> str:
    """The Gymnasium id of a short name of :data:`ENVS` (or of an id); ValueError listing the valid names."""
    if name in ENVS:
        return ENVS[name]
    if name in ENVS.values():
        return name
    raise ValueError(f"unknown environment {name!r}; choose from {sorted(ENVS)}")


def make(name: str, **kwargs: Any) -> gym.Env:
    """Makes an env from a short name of :data:`ENVS` or a Gymnasium id; ``kwargs`` go to ``gym.make`` (a Franka
    task's step limit follows its budgets with ``pregrasp=True``)."""
    register_envs()
    gym_id = env_id(name)
    if kwargs.get("pregrasp") and gym_id in ENV_TASKS:
        kwargs.setdefault("max_episode_steps", sum(TASKS[ENV_TASKS[gym_id]].budgets(pregrasp=True)))
    return gym.make(gym_id, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "FrankaEnv":  # lazy: importing pybullet is not needed to register
        return importlib.import_module("vjepa2.envs.franka").FrankaEnv
    raise AttributeError(f"module 'vjepa2.envs' has no attribute {name!r}")


register_envs()
