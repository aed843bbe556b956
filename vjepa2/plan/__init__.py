"""Planning with V-JEPA 2-AC: the world-model wrapper, CEM, closed-loop MPC, a robot controller and energy
landscapes."""

from vjepa2.plan.cached_rollout import CachedRollout
from vjepa2.plan.cem import CEM_NOTEBOOK, CEM_PAPER, CEM_TINY, CEMConfig, plan, project_l1_ball
from vjepa2.plan.controller import Controller, ControllerSettings
from vjepa2.plan.landscape import Landscape, energy_landscape, plot_landscape
from vjepa2.plan.mpc import (
    EpisodeResult,
    LatentPlanner,
    OraclePlanner,
    Planner,
    RandomPlanner,
    evaluate,
    run_episode,
    summarize,
    write_gif,
)
from vjepa2.plan.world_model import WorldModel

__all__ = [
    "CEM_NOTEBOOK",
    "CEM_PAPER",
    "CEM_TINY",
    "CEMConfig",
    "CachedRollout",
    "Controller",
    "ControllerSettings",
    "EpisodeResult",
    "Landscape",
    "LatentPlanner",
    "OraclePlanner",
    "Planner",
    "RandomPlanner",
    "WorldModel",
    "energy_landscape",
    "evaluate",
    "plan",
    "plot_landscape",
    "project_l1_ball",
    "run_episode",
    "summarize",
    "write_gif",
]
