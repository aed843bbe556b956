"""What planning needs from an environment, and the two views of one env that the planners use.

Every env of :mod:`vjepa2.envs` (Franka tabletop, Two-Rooms, Push-T) speaks one state vocabulary,
:class:`SimulatedEnv`: ``get_state`` / ``set_state`` (a snapshot that restores the simulation), ``simulate`` (one
action, physics only: no image, no step count), ``oracle_cost`` (the true-state distance to a goal) and
``goal_images``. On top of it:

- :class:`PlanningEnv`, a Gymnasium wrapper, is the env as MPC (:func:`~vjepa2.plan.mpc.run_episode`) sees it:
  ``reset(seed)`` starts an episode (a protocol's start and goal states when ``episodes`` are given), ``step`` runs
  a planner action as ``frameskip`` env steps and latches success over them (``info["is_success"]``), and
  ``info["distance"]`` is the env's distance to the final goal after the last one;
- :class:`SimulatorModel` is the same env as the oracle planner's model: candidates run with ``simulate`` from a
  saved state and are scored with ``oracle_cost`` against the goal image being planned for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class SimulatedEnv(Protocol):
    """The contract every planning env implements (besides Gymnasium's ``reset`` / ``step`` / ``render``)."""

    def get_state(self) -> Any: ...

    def set_state(self, state: Any) -> None: ...

    def simulate(self, action: np.ndarray) -> None: ...

    def oracle_cost(self, *, goal_index: int | None = None) -> float: ...

    def goal_images(self) -> list[np.ndarray]: ...


def split_chunk(action: np.ndarray, frameskip: int) -> np.ndarray:
    """A planner action ``[frameskip * A]`` as ``frameskip`` env actions ``[frameskip, A]``."""
    action = np.asarray(action, dtype=np.float32).reshape(-1)
    if action.size % frameskip:
        raise ValueError(f"an action of {action.size} values does not split into {frameskip} env actions")
    return action.reshape(frameskip, -1)


class PlanningEnv(gym.Wrapper):
    """An env as MPC sees it: episodes by seed, ``frameskip`` env steps per action, success latched over them.

    Args:
        env: a :class:`SimulatedEnv` (Gymnasium wrappers are looked through).
        episodes: a protocol's :class:`~vjepa2.plan.protocol.Episode` list (``reset(seed)`` starts the one of
            that seed from its start state toward its goal state); None: the env's own episode of that seed.
        frameskip: env steps per planner action.
    """

    def __init__(self, env: gym.Env, episodes: Sequence[Any] | None = None, frameskip: int = 1) -> None:
        super().__init__(env)
        self.frameskip = frameskip
        self.episodes = None if episodes is None else {ep.seed: ep for ep in episodes}

    @property
    def sim(self) -> SimulatedEnv:
        """The simulator under every wrapper."""
        return self.env.unwrapped  # type: ignore[return-value]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.episodes is not None:
            if seed not in self.episodes:
                raise KeyError(f"no episode with seed {seed}; have {sorted(self.episodes)}")
            ep = self.episodes[seed]
            options = {**(options or {}), "state": ep.start, "goal": ep.goal}
        obs, info = self.env.reset(seed=seed, options=options)
        return self._with_goal(obs), info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        success = False
        for a in split_chunk(action, self.frameskip):
            obs, reward, terminated, truncated, info = self.env.step(a)
            success = success or bool(info["is_success"])
        return self._with_goal(obs), reward, terminated, truncated, {**info, "is_success": success}

    def _with_goal(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Adds ``"goal_state"``, the goal's true state (agent position first) of envs with one goal state, for
        DINO-WM's proprio term."""
        goal = getattr(self.sim, "goal_state", None)
        return obs if goal is None else {**obs, "goal_state": np.asarray(goal, dtype=np.float32)}

    def goal_images(self) -> list[np.ndarray]:
        return self.sim.goal_images()

    def simulator(self) -> SimulatorModel:
        """This env as the oracle's model (same ``frameskip``)."""
        return SimulatorModel(self.sim, self.frameskip)


class SimulatorModel:
    """The simulator as the oracle planner's model: ``step`` runs ``simulate`` (``frameskip`` times, no image),
    ``distance`` is the env's ``oracle_cost`` to the configuration shown in the goal image being planned for.

    Only the latest saved state is kept (an env with ``release_state`` frees the previous one when a new one is
    taken: pybullet snapshots hold memory).
    """

    def __init__(self, env: SimulatedEnv, frameskip: int = 1) -> None:
        self.env, self.frameskip = env, frameskip
        self._saved: Any = None

    def get_state(self) -> Any:
        if self._saved is not None and hasattr(self.env, "release_state"):
            self.env.release_state(self._saved)
        self._saved = self.env.get_state()
        return self._saved

    def set_state(self, state: Any) -> None:
        self.env.set_state(state)

    def step(self, action: np.ndarray) -> tuple[None, float, bool, bool, dict[str, Any]]:
        for a in split_chunk(action, self.frameskip):
            self.env.simulate(a)
        return None, 0.0, False, False, {}

    def goal_index(self, goal: np.ndarray) -> int:
        """Which of the episode's goal images ``goal`` is."""
        for i, image in enumerate(self.env.goal_images()):
            if np.array_equal(image, goal):
                return i
        raise ValueError("the oracle was asked to plan for an image that is not one of the env's goal images")

    def distance(self, obs: Any, info: dict[str, Any], goal: np.ndarray) -> float:
        """The oracle's energy: the env's true cost to the goal configuration shown in ``goal``."""
        return float(self.env.oracle_cost(goal_index=self.goal_index(goal)))
