"""The Franka tabletop under the V-JEPA 2-AC protocol: its envs and planners (latent, random, true-state oracle)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vjepa2.plan.cem import CEMConfig
from vjepa2.plan.envs import PlanningEnv
from vjepa2.plan.mpc import Preprocess
from vjepa2.plan.world_model import WorldModel


def make_env(name: str, image_size: int, pregrasp: bool = False) -> PlanningEnv:
    """The Franka env ``name`` (a short name of :data:`vjepa2.envs.ENVS`), without Gymnasium's wrappers;
    ``pregrasp``: see :class:`vjepa2.envs.franka.FrankaEnv`."""
    from vjepa2.envs import make

    return PlanningEnv(make(name, image_size=image_size, pregrasp=pregrasp).unwrapped)


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

    def oracle(env: PlanningEnv) -> OraclePlanner:
        sim = env.simulator()
        return OraclePlanner(sim, oracle_cem, distance_fn=sim.distance)

    planners: dict[str, Any] = {"latent": LatentPlanner(world_model, cem, preprocess)}
    if "random" in names:
        closed = cem.close_gripper == 0  # the latent planner's task knowledge, given to the baseline too
        planners["random"] = RandomPlanner(radius=cem.radius, gripper=gripper, seed=cem.seed or 0, closed=closed)
    if "oracle" in names:
        planners["oracle"] = oracle
    return planners
