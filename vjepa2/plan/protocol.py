"""Goal-image planning protocols on the benchmark envs (Two-Rooms / Wall, Push-T), as the published works use them.

``docs/planning-protocol.md`` writes the protocols down; ``planning-benchmarks.md`` §5.1, §2.4 and §9 has the
sources. An episode is a start state and a goal state (full simulator states); the planner sees the rendered goal
image only.

- ``lewm`` (LeWorldModel, arXiv 2603.19312, App. F.1; stable-worldmodel's eval): the start is the state at a random
  step ``t`` of a held-out trajectory and the goal the state ``offset = 25`` steps later in it; a budget of 50 env
  steps; 50 episodes; success latched (an episode succeeds if the success rule held after any env step).
- ``dinowm`` (DINO-WM, arXiv 2411.04983; ``conf/plan_*.yaml``): Wall goals are the env's random states (start and
  goal uniform in opposite rooms, ``goal_source: random_state``); Push-T goals come from held-out trajectories
  25 steps ahead (``dset``); DINO-WM replans until every episode succeeds (no cap), here the budget is capped at 250
  env steps (10 of its 25-step MPC chunks).

Held-out trajectories are rolled out by ``vjepa2 collect``'s noisy scripted policy with seeds from
:data:`HELD_OUT_SEED` on (collect training data with seeds below it), or read from trajectory files that hold
``true_states``. Planners act in chunks of ``frameskip`` env actions (DINO-WM and LeWM: 5; here the world model's
``action_dim / env action_dim``); the budget and the reported steps count env steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vjepa2.plan.cem import CEMConfig
from vjepa2.plan.envs import PlanningEnv
from vjepa2.plan.mpc import OraclePlanner, RandomPlanner, evaluate

HELD_OUT_SEED = 1_000_000
PoseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PlanningProtocol:
    """How episodes are drawn and scored.

    Attributes:
        name: ``"lewm"`` or ``"dinowm"``.
        goals: ``"trajectory"`` (start at step t of a held-out trajectory, goal at t + offset) or ``"env"`` (the
            env's own random start and goal).
        offset: env steps from the start to the goal along a trajectory.
        budget: env steps per episode.
        episodes: episodes of a full run.
    """

    name: str
    goals: Literal["trajectory", "env"]
    offset: int = 25
    budget: int = 50
    episodes: int = 50


PROTOCOLS = ("lewm", "dinowm")
PUBLISHED: dict[tuple[str, str], str] = {  # (protocol, Gymnasium id) -> reference success rates
    ("lewm", "vjepa2/Wall-v0"): "TwoRoom, 50 steps: LeWM 87%, PLDM 97%, DINO-WM 100% (stable-worldmodel)",
    ("lewm", "vjepa2/WallRandom-v0"): "TwoRoom, 50 steps: LeWM 87%, PLDM 97%, DINO-WM 100% (stable-worldmodel)",
    ("lewm", "vjepa2/PushT-v0"): "Push-T, 50 steps: LeWM 96%, PLDM 78%, DINO-WM 74-92%",
    ("dinowm", "vjepa2/Wall-v0"): "Wall: DINO-WM 0.96 (MPC, no step cap), open-loop 0.74",
    ("dinowm", "vjepa2/WallRandom-v0"): "WallRandom: DINO-WM 0.82 (MPC, no step cap)",
    ("dinowm", "vjepa2/PushT-v0"): "Push-T: DINO-WM 0.90 (MPC, no step cap), open-loop 0.86",
}


def get_protocol(name: str, env_name: str) -> PlanningProtocol:
    """The protocol ``name`` for the benchmark env ``env_name`` (DINO-WM's goal source depends on the env)."""
    from vjepa2.envs import env_id

    if name == "lewm":
        return PlanningProtocol("lewm", "trajectory", offset=25, budget=50)
    if name == "dinowm":
        goals = "trajectory" if env_id(env_name) == "vjepa2/PushT-v0" else "env"
        return PlanningProtocol("dinowm", goals, offset=25, budget=250)
    raise ValueError(f"unknown protocol {name!r}; choose from {list(PROTOCOLS)}")


@dataclass(frozen=True)
class Episode:
    """One evaluation episode: env seed, full start and goal states, and where they came from."""

    seed: int
    start: np.ndarray
    goal: np.ndarray
    source: str


# ---------------------------------------------------------------- episodes


def make_benchmark_env(name: str, image_size: int = 64) -> Any:
    """The unwrapped benchmark env ``name`` (a name of :data:`vjepa2.envs.BENCHMARK_ENVS`)."""
    from vjepa2.envs import BENCHMARK_ENVS, make

    if name not in BENCHMARK_ENVS and name not in BENCHMARK_ENVS.values():
        raise ValueError(f"{name!r} is not a benchmark env; choose from {sorted(BENCHMARK_ENVS)}")
    return make(name, image_size=image_size).unwrapped


def held_out_states(
    env: Any, count: int, length: int, seed: int = 0, policy: str = "scripted", noise: float = 0.3
) -> list[np.ndarray]:
    """True states ``[length + 1, K]`` of ``count`` trajectories rolled out with seeds ``HELD_OUT_SEED + seed + i``."""
    from vjepa2.envs.collect import collect_episode, make_policy

    act = make_policy(policy, noise)
    return [collect_episode(env, act, HELD_OUT_SEED + seed + i, length)["true_states"] for i in range(count)]


def load_true_states(paths: Sequence[str | os.PathLike]) -> list[np.ndarray]:
    """``true_states`` of trajectory files (folders are searched), as ``vjepa2 collect`` writes them."""
    from vjepa2.data.trajectories import TRAJECTORY_SUFFIXES, load_trajectory

    files = []
    for path in map(Path, paths):
        found = path.rglob("*") if path.is_dir() else [path]
        files += sorted(f for f in found if f.suffix.lower() in TRAJECTORY_SUFFIXES)
    states = []
    for path in files:
        traj = load_trajectory(path)
        if traj.true_states is None:
            raise ValueError(f"{path} holds no true_states (collect it with `vjepa2 collect` from a benchmark env)")
        states.append(traj.true_states.astype(np.float64))
    if not states:
        raise ValueError(f"no trajectory files in {[str(p) for p in paths]}")
    return states


def trajectory_episodes(states: Sequence[np.ndarray], count: int, offset: int, seed: int = 0) -> list[Episode]:
    """``count`` episodes: start = ``states[j][t]``, goal = ``states[j][t + offset]`` for distinct random ``(j, t)``
    (every ``t <= len - 1 - offset``), drawn with ``seed``; episode ``i`` gets env seed ``seed + i``."""
    pairs = [(j, t) for j, s in enumerate(states) for t in range(len(s) - offset)]
    if not pairs:
        raise ValueError(f"no trajectory is longer than the goal offset ({offset} steps)")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pairs), size=count, replace=count > len(pairs))
    return [
        Episode(seed + i, states[j][t].copy(), states[j][t + offset].copy(), f"trajectory {j}, t={t}")
        for i, (j, t) in enumerate(pairs[k] for k in picks)
    ]


def env_episodes(env: Any, count: int, seed: int = 0) -> list[Episode]:
    """``count`` episodes from the env's own random start and goal (``reset(seed + i)``)."""
    episodes = []
    for i in range(count):
        _, info = env.reset(seed=seed + i)
        episodes.append(Episode(seed + i, info["state"].copy(), info["goal_state"].copy(), "env random state"))
    return episodes


def build_episodes(
    env: Any, protocol: PlanningProtocol, count: int, seed: int = 0, states: Sequence[np.ndarray] | None = None
) -> list[Episode]:
    """The protocol's episodes; ``states`` are held-out true-state trajectories (rolled out when None)."""
    if protocol.goals == "env":
        return env_episodes(env, count, seed)
    if states is None:
        states = held_out_states(env, count, 2 * protocol.offset, seed)
    return trajectory_episodes(states, count, protocol.offset, seed)


# ---------------------------------------------------------------- env and planners


def env_cem(cfg: CEMConfig, env: Any, frameskip: int) -> CEMConfig:
    """``cfg``'s sampling settings on the env's action set: ``frameskip`` stacked actions, each in its box or ball.

    The paper's planner projects onto the env's set (its box or ball); the notebook's clips each coordinate to
    the radius (a box; the env then clips the executed action to its own set) and keeps its momentum.
    """
    variant, radius = env.action_bound
    if cfg.variant == "notebook":
        variant = "box"
    return replace(cfg, variant=variant, radius=radius, action_dim=frameskip * env.action_dim, group=env.action_dim,
                   init_std=None)  # fmt: skip


def uniform_sampler(env: Any, frameskip: int) -> Callable[[np.random.Generator], np.ndarray]:
    """Draws ``frameskip`` stacked env actions, each uniform in the env's box or L2 ball (the random baseline)."""
    variant, radius = env.action_bound

    def sample(rng: np.random.Generator) -> np.ndarray:
        if variant == "box":
            return rng.uniform(-radius, radius, size=frameskip * env.action_dim).astype(np.float32)
        direction = rng.standard_normal((frameskip, env.action_dim))
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        scale = radius * rng.uniform(size=(frameskip, 1)) ** (1.0 / env.action_dim)
        return (direction * scale).reshape(-1).astype(np.float32)

    return sample


def chunk_pose_fn(step: Callable[[Any, Any], Any], frameskip: int, action_dim: int) -> PoseFn:
    """A world-model ``pose_fn`` for chunked actions: ``step`` (the env's proprioception update) applied to each
    of the ``frameskip`` actions ``[..., frameskip * action_dim]`` in turn."""

    def fn(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        for a in action.unflatten(-1, (frameskip, action_dim)).unbind(-2):
            state = step(state, a)
        return state

    return fn


def baseline_planners(
    names: Sequence[str], env: Any, frameskip: int, oracle_cem: CEMConfig, seed: int = 0
) -> dict[str, Any]:
    """``{name: planner or env -> planner}`` for ``random`` (uniform actions) and ``oracle`` (true-state CEM)."""

    def oracle(penv: PlanningEnv) -> OraclePlanner:
        sim = penv.simulator()
        return OraclePlanner(sim, env_cem(oracle_cem, env, frameskip), distance_fn=sim.distance)

    planners: dict[str, Any] = {}
    if "random" in names:
        planners["random"] = RandomPlanner(seed=seed, sampler=uniform_sampler(env, frameskip))
    if "oracle" in names:
        planners["oracle"] = oracle
    return planners


def run_protocol(
    env_name: str,
    planner: Any,
    episodes: Sequence[Episode],
    budget: int,
    frameskip: int = 1,
    image_size: int = 64,
    gif_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Episode rows of one planner on ``episodes`` (seeds as numbered), ``budget`` env steps each.

    Rows are those of :func:`~vjepa2.plan.mpc.evaluate`, with ``steps`` in env steps (planner steps x frameskip),
    ``start``/``goal`` states and their ``source``.
    """
    if budget % frameskip:
        raise ValueError(f"the budget ({budget} env steps) must be a multiple of the frameskip ({frameskip})")
    specs = {ep.seed: ep for ep in episodes}
    first = min(specs)
    if sorted(specs) != list(range(first, first + len(specs))):
        raise ValueError("episode seeds must be consecutive")
    rows = evaluate(
        lambda: PlanningEnv(make_benchmark_env(env_name, image_size), episodes, frameskip), planner,
        episodes=len(episodes), seed=first, max_steps=budget // frameskip, gif_dir=gif_dir,
    )  # fmt: skip
    for row in rows:
        ep = specs[row["seed"]]
        row.update(steps=row["steps"] * frameskip, start=ep.start.tolist(), goal=ep.goal.tolist(), source=ep.source)
    return rows
