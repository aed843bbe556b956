"""Receding-horizon MPC against a Gymnasium-style environment, with latent, random and oracle planners.

V-JEPA 2-AC plans one action with CEM, executes it, observes and re-plans (arXiv 2506.09985, Sec. 4). Multi-stage
tasks use a schedule of goal images, each with a step budget (pick-and-place: grasp 4, near-goal 10, goal 4).

Environment contract (as the project's pybullet Franka env): ``reset(seed=...) -> (obs, info)``,
``step(action [7]) -> (obs, reward, terminated, truncated, info)`` with ``obs = {"image": uint8 [H, W, 3],
"state": float32 [7]}``, ``info["is_success"]`` and optionally ``info["distance"]`` (reported as the final
distance); ``goal_images() -> list of uint8 [H, W, 3]`` (sub-goals, last = final goal);
``get_state()`` / ``set_state(state)`` for the oracle.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from vjepa2.data.poses import sample_l1_ball
from vjepa2.data.transforms import preprocess as eval_preprocess
from vjepa2.plan.cem import CEM_PAPER, CEM_TINY, CEMConfig
from vjepa2.plan.cem import plan as cem_plan
from vjepa2.plan.world_model import WorldModel

_log = logging.getLogger(__name__)

BASELINES = ("random", "oracle")  # the planners every planning table shows beside the latent one

Obs = dict[str, np.ndarray]
Preprocess = Callable[[np.ndarray], torch.Tensor]
DistanceFn = Callable[[Obs, dict, np.ndarray], float]


@runtime_checkable
class Planner(Protocol):
    """``plan(obs, goal image) -> action [7]``. An optional ``reset(seed)`` is called at each episode start."""

    def plan(self, obs: Obs, goal: np.ndarray) -> np.ndarray: ...


def default_preprocess(resolution: int) -> Preprocess:
    """uint8 ``[H, W, 3]`` -> ImageNet-normalised float ``[3, resolution, resolution]`` (short-side resize, crop)."""

    def fn(image: np.ndarray) -> torch.Tensor:
        return eval_preprocess(image, resolution=resolution, resize_ratio=1.0)[:, 0]

    return fn


def image_distance(obs: Obs, info: dict, goal: np.ndarray) -> float:
    """Mean absolute pixel difference to the goal image, in [0, 1] (the oracle's default distance)."""
    return float(np.abs(obs["image"].astype(np.float32) - goal.astype(np.float32)).mean() / 255.0)


class LatentPlanner:
    """CEM in the world model's latent space: energy = L1 between the rolled-out prediction and the goal features.

    Args:
        world_model: the V-JEPA 2-AC world model.
        cem_cfg: CEM settings (the paper's by default).
        preprocess: uint8 image ``[H, W, 3]`` -> normalised ``[3, H', W']`` at the predictor's resolution.
        proprio_weight: weight of DINO-WM's proprioceptive term (0: the official, visual-only energy); it compares
            the first ``proprio_dims`` pose entries (the agent's position) with ``obs["goal_state"]``'s, which the
            benchmark protocol provides.
        visual_weight: weight of the visual L1 (0 with a ``proprio_weight``: the proprio-only reference planner).
    """

    def __init__(
        self,
        world_model: WorldModel,
        cem_cfg: CEMConfig = CEM_PAPER,
        preprocess: Preprocess | None = None,
        proprio_weight: float = 0.0,
        visual_weight: float = 1.0,
        proprio_dims: int = 2,
    ) -> None:
        self.world_model = world_model
        self.cfg = cem_cfg
        self.proprio_weight, self.visual_weight, self.proprio_dims = proprio_weight, visual_weight, proprio_dims
        self.preprocess = preprocess or default_preprocess(world_model.predictor.cfg.img_size)
        self.generator = torch.Generator()
        self.last_info: dict[str, Any] = {}
        self._goals: dict[bytes, torch.Tensor] = {}
        self.reset(cem_cfg.seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the sampler and forget cached goal features."""
        self.generator.manual_seed(0 if seed is None else seed)
        self._goals.clear()

    def encode(self, image: np.ndarray) -> torch.Tensor:
        """uint8 ``[H, W, 3]`` -> features ``[1, 1, HW, D]``."""
        return self.world_model.encode(self.preprocess(image)[None])

    def _goal(self, goal: np.ndarray) -> torch.Tensor:
        key = hashlib.sha1(np.ascontiguousarray(goal).tobytes()).digest()
        if key not in self._goals:
            self._goals[key] = self.encode(goal)
        return self._goals[key]

    def plan(self, obs: Obs, goal: np.ndarray) -> np.ndarray:
        z0 = self.encode(obs["image"])
        s0 = torch.as_tensor(np.asarray(obs["state"], dtype=np.float32)).view(1, 1, -1)
        goal_pose = None
        if self.proprio_weight:
            if "goal_state" not in obs:
                raise ValueError("proprio_weight needs obs['goal_state'] (the benchmark protocol's envs give it)")
            goal_pose = torch.as_tensor(np.asarray(obs["goal_state"], dtype=np.float32)[: self.proprio_dims])
        energy_fn = self.world_model.energy_fn(
            z0, s0, self._goal(goal), goal_pose=goal_pose, proprio_weight=self.proprio_weight,
            visual_weight=self.visual_weight,
        )  # fmt: skip
        actions, self.last_info = cem_plan(energy_fn, self.cfg, self.generator)
        return actions[0].numpy()


class RandomPlanner:
    """Uniform random actions: xyz uniform in the L1 ball of ``radius``, gripper uniform in [-1, 1] if enabled (+1,
    closing, with ``closed``, as CEM's ``close_gripper=0``); or, for other action spaces, whatever ``sampler(rng)``
    draws."""

    def __init__(
        self,
        radius: float = 0.075,
        gripper: bool = False,
        seed: int = 0,
        sampler: Callable[[np.random.Generator], np.ndarray] | None = None,
        closed: bool = False,
    ) -> None:
        self.radius, self.gripper, self.sampler, self.closed = radius, gripper, sampler, closed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def plan(self, obs: Obs, goal: np.ndarray) -> np.ndarray:
        if self.sampler is not None:
            return self.sampler(self.rng)
        action = sample_action(self.rng, self.radius, self.gripper)
        if self.closed:
            action[-1] = 1.0
        return action


def sample_action(rng: np.random.Generator, radius: float, gripper: bool = False) -> np.ndarray:
    """One 7-D action: xyz uniform in the L1 ball of ``radius``, no rotation, gripper uniform in [-1, 1] or 0."""
    g = rng.uniform(-1.0, 1.0) if gripper else 0.0
    return np.array([*sample_l1_ball(rng, radius), 0.0, 0.0, 0.0, g], dtype=np.float32)


class OraclePlanner:
    """CEM with the simulator as the model: each candidate is replayed from the saved sim state.

    The simulator is not batched, so the energy loops over the samples: keep ``cem_cfg`` cheap.

    Args:
        env: the environment being controlled (``get_state`` / ``set_state``).
        cem_cfg: CEM settings.
        distance_fn: ``(obs, info, goal image) -> float`` after a candidate; pixel distance by default. Pass a
            state-space distance (e.g. from ``info``) for a true-state oracle.
    """

    def __init__(self, env: Any, cem_cfg: CEMConfig = CEM_TINY, distance_fn: DistanceFn = image_distance) -> None:
        self.env, self.cfg, self.distance_fn = env, cem_cfg, distance_fn
        self.generator = torch.Generator()
        self.last_info: dict[str, Any] = {}
        self.reset(cem_cfg.seed)

    def reset(self, seed: int | None = None) -> None:
        self.generator.manual_seed(0 if seed is None else seed)

    def _simulate(self, saved: Any, actions: np.ndarray, goal: np.ndarray) -> float:
        self.env.set_state(saved)
        for action in actions:
            obs, _, _, _, info = self.env.step(action)
        return self.distance_fn(obs, info, goal)

    def plan(self, obs: Obs, goal: np.ndarray) -> np.ndarray:
        saved = self.env.get_state()

        def energy_fn(actions: torch.Tensor) -> torch.Tensor:
            acts = actions.numpy().astype(np.float32)
            return torch.tensor([self._simulate(saved, a, goal) for a in acts])

        try:
            actions, self.last_info = cem_plan(energy_fn, self.cfg, self.generator)
        finally:
            self.env.set_state(saved)
        return actions[0].numpy()


@dataclass
class EpisodeResult:
    """One MPC episode: success, steps taken, final distance (``info["distance"]``, NaN if the env has none),
    planning seconds per action, and the observed frames (initial frame first) with the final goal image; per frame
    also the distance and the goal image then pursued (sub-goals)."""

    success: bool
    steps: int
    final_distance: float
    seconds_per_action: float
    frames: list[np.ndarray] = field(repr=False)
    goal_image: np.ndarray = field(repr=False)
    distances: list[float] = field(default_factory=list, repr=False)
    frame_goals: list[np.ndarray] = field(default_factory=list, repr=False)


def goal_schedule(env: Any, budgets: Sequence[int] | None, max_steps: int | None) -> list[tuple[np.ndarray, int]]:
    """Pair ``env.goal_images()`` with step budgets (one goal without budgets gets ``max_steps``)."""
    images = list(env.goal_images())
    if budgets is None:
        if len(images) != 1 or max_steps is None:
            raise ValueError(f"{len(images)} goal images: pass one budget per sub-goal (e.g. [4, 10, 4])")
        budgets = [max_steps]
    if len(budgets) != len(images):
        raise ValueError(f"{len(budgets)} budgets for {len(images)} goal images")
    return list(zip(images, budgets, strict=True))


def run_episode(
    env: Any,
    planner: Planner,
    goals: Sequence[tuple[np.ndarray, int]] | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    budgets: Sequence[int] | None = None,
) -> EpisodeResult:
    """Closed-loop MPC: plan, execute the first action, observe, re-plan.

    Args:
        env: the environment (see the module docstring).
        planner: any :class:`Planner`.
        goals: ``(goal image, step budget)`` sub-goals in order; None pairs ``env.goal_images()`` (read after the
            reset) with ``budgets``. A sub-goal is replaced by the next one when its budget is spent; the last
            one stays until ``max_steps``.
        max_steps: step cap; None is the sum of the budgets.
        seed: ``env.reset`` seed (and ``planner.reset`` seed when it has one).
        budgets: step budgets for ``env.goal_images()`` when ``goals`` is None.

    Returns:
        The :class:`EpisodeResult`; the episode stops at ``info["is_success"]``, termination or truncation.
    """
    obs, info = env.reset(seed=seed)
    if hasattr(planner, "reset"):
        planner.reset(seed)
    schedule = list(goals) if goals is not None else goal_schedule(env, budgets, max_steps)
    max_steps = max_steps if max_steps is not None else sum(b for _, b in schedule)
    frames, stage, used, steps, planning = [obs["image"]], 0, 0, 0, 0.0
    distances, frame_goals = [float(info.get("distance", math.nan))], [schedule[0][0]]
    success = bool(info.get("is_success", False))
    while steps < max_steps and not success:
        if used >= schedule[stage][1] and stage + 1 < len(schedule):
            stage, used = stage + 1, 0
        start = time.perf_counter()
        action = np.asarray(planner.plan(obs, schedule[stage][0]), dtype=np.float32)
        planning += time.perf_counter() - start
        obs, _, terminated, truncated, info = env.step(action)
        frames.append(obs["image"])
        distances.append(float(info.get("distance", math.nan)))
        frame_goals.append(schedule[stage][0])
        steps, used = steps + 1, used + 1
        success = bool(info.get("is_success", False))
        if terminated or truncated:
            break
    return EpisodeResult(
        success, steps, distances[-1], planning / max(steps, 1), frames, schedule[-1][0], distances, frame_goals
    )


def evaluate(
    env_factory: Callable[[], Any],
    planner: Planner | Callable[[Any], Planner],
    episodes: int = 50,
    seed: int = 0,
    budgets: Sequence[int] | None = None,
    max_steps: int | None = None,
    gif_dir: str | Path | None = None,
    gifs: int = 3,
) -> list[dict[str, Any]]:
    """Run ``episodes`` MPC episodes (seeds ``seed, seed + 1, ...``) on one environment.

    Args:
        env_factory: builds the environment (once).
        planner: a planner, or ``env -> planner`` (for planners that need the env, e.g. :class:`OraclePlanner`).
        episodes: number of episodes.
        seed: seed of the first episode.
        budgets: sub-goal budgets for ``env.goal_images()`` (see :func:`run_episode`).
        max_steps: step cap per episode.
        gif_dir: if set, the first ``gifs`` episodes are written there as ``episode_XXX.gif``.
        gifs: how many GIFs to write.

    Returns:
        One row per episode: ``episode, seed, success, steps, final_distance, seconds_per_action``.
    """
    env = env_factory()
    agent = planner if isinstance(planner, Planner) and not isinstance(planner, type) else planner(env)
    rows = []
    try:
        for i in range(episodes):
            result = run_episode(env, agent, max_steps=max_steps, seed=seed + i, budgets=budgets)
            if gif_dir is not None and i < gifs:
                path = Path(gif_dir) / f"episode_{i:03d}.gif"
                write_gif(result.frames, result.frame_goals or result.goal_image, path, distances=result.distances)
            rows.append(
                {
                    "episode": i,
                    "seed": seed + i,
                    "success": result.success,
                    "steps": result.steps,
                    "final_distance": result.final_distance,
                    "seconds_per_action": result.seconds_per_action,
                }
            )
            done = sum(r["success"] for r in rows)
            _log.info(
                f"episode {i + 1}/{episodes} (seed {seed + i}): {'success' if result.success else 'failure'} in "
                f"{result.steps} steps, final distance {result.final_distance:.3f}; {done}/{i + 1} so far"
            )
    finally:
        if hasattr(env, "close"):
            env.close()
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Success rate, mean steps, mean final distance and mean planning seconds per action of episode rows."""
    if not rows:
        raise ValueError("no episodes to summarize")

    def mean(key: str) -> float:
        return float(np.nanmean([float(r[key]) for r in rows]))

    return {
        "episodes": len(rows),
        "success_rate": mean("success"),
        "steps": mean("steps"),
        "final_distance": mean("final_distance"),
        "seconds_per_action": mean("seconds_per_action"),
    }


def write_gif(
    frames: Sequence[np.ndarray],
    goal_image: np.ndarray | Sequence[np.ndarray],
    path: str | Path,
    fps: float = 4.0,
    distances: Sequence[float] | None = None,
    scale: int = 4,
) -> Path:
    """Write an animated GIF of the episode frames, each shown next to its goal image, labelled "now" and "goal",
    with the step counter and (when given) the distance to the goal under them.

    Args:
        frames: uint8 ``[H, W, 3]`` observations.
        goal_image: uint8 ``[H', W', 3]`` (resized to the frames' height), or one per frame (sub-goals).
        path: output ``.gif`` path (parent folders are created).
        fps: frames per second.
        distances: one per frame (NaN: not shown), e.g. the end effector's distance to the goal in metres.
        scale: nearest-neighbour upscaling of the frames (64 px sim frames are hard to see otherwise).

    Returns:
        The path written.
    """
    from PIL import Image, ImageDraw

    if not frames:
        raise ValueError("no frames to write")
    goals = list(goal_image) if not isinstance(goal_image, np.ndarray) else [goal_image] * len(frames)
    if len(goals) != len(frames) or (distances is not None and len(distances) != len(frames)):
        raise ValueError(f"{len(frames)} frames need as many goal images and distances")
    h, w = frames[0].shape[0] * scale, frames[0].shape[1] * scale
    gap, label = 4, 14
    images = []
    for t, (frame, goal_arr) in enumerate(zip(frames, goals, strict=True)):
        goal = Image.fromarray(np.asarray(goal_arr, dtype=np.uint8))
        goal = goal.resize((max(1, round(goal.width * h / goal.height)), h), Image.NEAREST)
        canvas = Image.new("RGB", (w + gap + goal.width, h + 2 * label), (255, 255, 255))
        canvas.paste(Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((w, h), Image.NEAREST), (0, label))
        canvas.paste(goal, (w + gap, label))
        draw = ImageDraw.Draw(canvas)
        draw.text((2, 1), "now", fill=(0, 0, 0))
        draw.text((w + gap + 2, 1), "goal", fill=(0, 0, 0))
        text = f"step {t}/{len(frames) - 1}"
        if distances is not None and not math.isnan(distances[t]):
            text += f"   distance {distances[t]:.3f}"
        draw.text((2, h + label + 1), text, fill=(0, 0, 0))
        images.append(canvas)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = max(20, round(1000 / fps))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path
