"""The Franka tabletop under the V-JEPA 2-AC protocol: the scored env, the oracle's true-state simulator, planners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vjepa2.plan.cem import CEMConfig
from vjepa2.plan.load import Preprocess
from vjepa2.plan.world_model import WorldModel


class ScoredEnv:
    """A :class:`~vjepa2.envs.franka.FrankaEnv` for :func:`~vjepa2.plan.mpc.run_episode`, with ``info["distance"]``.

    The distance is to the *final* goal, in metres: the end effector's for tasks without the cube (reach), the
    cube's otherwise (what the success rules measure).
    """

    def __init__(self, env: Any) -> None:
        self.env = env

    def _score(self, info: dict[str, Any]) -> dict[str, Any]:
        goal = self.env.goals[-1]
        if self.env.task_spec.uses_cube:
            distance = np.linalg.norm(info["cube_pos"] - goal.cube_pos)
        else:
            distance = np.linalg.norm(info["ee_pos"] - goal.ee_pos)
        return {**info, "distance": float(distance)}

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed)
        return obs, self._score(info)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._score(info)

    def goal_images(self) -> list[np.ndarray]:
        return self.env.goal_images()

    def close(self) -> None:
        self.env.close()


class TrueStateSim:
    """The simulator as the oracle's model: candidates run with ``FrankaEnv.simulate`` (physics, no image) and are
    scored with ``oracle_cost`` against the configuration of the goal image being planned for.

    Only the latest saved sim state is kept (the previous one is released when a new one is taken).
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self._saved: Any = None

    def get_sim_state(self) -> Any:
        if self._saved is not None:
            self.env.release_sim_state(self._saved)
        self._saved = self.env.get_sim_state()
        return self._saved

    def set_sim_state(self, state: Any) -> None:
        self.env.set_sim_state(state)

    def step(self, action: np.ndarray) -> tuple[None, float, bool, bool, dict[str, Any]]:
        self.env.simulate(action)
        return None, 0.0, False, False, {}

    def goal_index(self, goal: np.ndarray) -> int:
        """Which of the episode's goal images ``goal`` is."""
        for i, image in enumerate(self.env.goal_images()):
            if np.array_equal(image, goal):
                return i
        raise ValueError("the oracle was asked to plan for an image that is not one of the env's goal images")

    def distance(self, obs: Any, info: dict[str, Any], goal: np.ndarray) -> float:
        """The oracle's energy: the env's true cost (metres) to the goal configuration shown in ``goal``."""
        return float(self.env.oracle_cost(goal_index=self.goal_index(goal)))


def make_env(name: str, image_size: int) -> ScoredEnv:
    """The Franka env ``name`` (a short name of :data:`vjepa2.envs.ENVS`), without Gymnasium's wrappers."""
    from vjepa2.envs import make

    return ScoredEnv(make(name, image_size=image_size).unwrapped)


def build_planners(
    names: Sequence[str],
    world_model: WorldModel,
    cem: CEMConfig,
    oracle_cem: CEMConfig,
    preprocess: Preprocess,
    gripper: bool,
) -> dict[str, Any]:
    """``{name: planner or env -> planner}``: ``latent`` first, then the requested baselines."""
    from vjepa2.plan.mpc import LatentPlanner, OraclePlanner, RandomPlanner

    def oracle(env: ScoredEnv) -> OraclePlanner:
        sim = TrueStateSim(env.env)
        return OraclePlanner(sim, oracle_cem, distance_fn=sim.distance)

    planners: dict[str, Any] = {"latent": LatentPlanner(world_model, cem, preprocess)}
    if "random" in names:
        planners["random"] = RandomPlanner(radius=cem.radius, gripper=gripper, seed=cem.seed or 0)
    if "oracle" in names:
        planners["oracle"] = oracle
    return planners

BASELINES = ("random", "oracle")
