"""``vjepa2 plan`` and ``vjepa2 energy-landscape``: a trained world model at work in the simulated Franka tabletop.

``plan`` follows the V-JEPA 2-AC protocol (arXiv 2506.09985, Sec. 4; ``planning-benchmarks.md`` §8-9): every
planner runs the same episodes (env seeds ``seed, seed + 1, ...``), plans one action with CEM, executes it and
re-plans; multi-stage tasks switch goal images on the task's budgets (pick-and-place: grasp 4, near-goal 10,
place 4). Baselines under the same protocol:

- ``random``: uniform actions in the L1 ball of the CEM radius (gripper too, except for reach);
- ``oracle``: the same CEM, each candidate replayed in the simulator (physics only) and scored by the env's true
  cost against the active goal's configuration (``FrankaEnv.oracle_cost``), not by pixels.

The table gives the success rate, the mean final distance to the final goal (metres: the end effector for reach,
the cube otherwise), planning seconds per action and the CEM settings.

``energy-landscape`` sweeps ``(dx, dy)`` around one transition, from a trajectory file or from one scripted env
step, and reports the argmin against the ground-truth action (paper Fig. 9).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa2.config import AC_PREDICTOR_PRESETS, ENCODER_PRESETS
from vjepa2.outputs import add_overwrite_arg, check_output
from vjepa2.plan.cem import CEM_CPU, CEM_NOTEBOOK, CEM_PAPER, CEM_TINY, CEMConfig
from vjepa2.plan.load import CheckpointInfo, load_world_model, read_checkpoint_info
from vjepa2.plan.protocol import HELD_OUT_SEED
from vjepa2.plan.world_model import DTYPES, WorldModel

CEM_PRESETS: dict[str, CEMConfig] = {"paper": CEM_PAPER, "notebook": CEM_NOTEBOOK, "cpu": CEM_CPU, "tiny": CEM_TINY}
BASELINES = ("random", "oracle")
Preprocess = Callable[[np.ndarray], torch.Tensor]


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------- shared pieces


def cem_config(preset: str, **overrides: Any) -> CEMConfig:
    """The CEM preset ``preset`` with the overrides that are not None (e.g. ``samples=64``)."""
    if preset not in CEM_PRESETS:
        raise ValueError(f"unknown CEM preset {preset!r}; choose from {sorted(CEM_PRESETS)}")
    return replace(CEM_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})


def describe_cem(cfg: CEMConfig) -> str:
    """One line of CEM settings, e.g. ``800x10 top-10 H=1 L1<=0.075``."""
    space = f"L1<={cfg.radius:g}" if cfg.variant == "paper" else f"box {cfg.maxnorm:g}"
    return f"{cfg.samples}x{cfg.iterations} top-{cfg.topk} H={cfg.horizon} {space}"


def frame_preprocess(transform: str, resolution: int) -> Preprocess:
    """uint8 ``[H, W, 3]`` -> normalised ``[3, resolution, resolution]`` with a training transform's name."""
    from vjepa2.data.trajectories import make_clip_transform

    clip_fn = make_clip_transform(transform, resolution)
    rng = np.random.default_rng(0)  # the named transforms are deterministic

    def fn(image: np.ndarray) -> torch.Tensor:
        return clip_fn(torch.from_numpy(np.ascontiguousarray(image))[None], rng)[:, 0]

    return fn


def _pick_transform(name: str, info: CheckpointInfo) -> str:
    """``auto``: the transform the checkpoint was trained with, else ``resize`` (square simulator frames)."""
    return (info.transform or "resize") if name == "auto" else name


def _load(args: argparse.Namespace) -> tuple[WorldModel, CheckpointInfo]:
    info = read_checkpoint_info(args.world_model)
    wm = load_world_model(args.world_model, args.dtype, args.device, args.encoder, args.predictor)
    return wm, info


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world-model", required=True, metavar="CKPT", help="train-ac latest.pt or vjepa2-ac-vitg.pt")
    p.add_argument("--encoder", choices=sorted(ENCODER_PRESETS), help="encoder preset (files without configs)")
    p.add_argument("--predictor", choices=sorted(AC_PREDICTOR_PRESETS), help="AC predictor preset (idem)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="world-model autocast dtype")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--transform", type=_transform_arg, default="auto", help="auto (as trained), resize, center, droid[+blur=S]"
    )


def _transform_arg(value: str) -> str:
    from vjepa2.data.trajectories import parse_transform

    if value != "auto":
        try:
            parse_transform(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return value


# ---------------------------------------------------------------- environment adapters


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


# ---------------------------------------------------------------- plan


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


def result_row(name: str, rows: list[dict[str, Any]], settings: str) -> dict[str, Any]:
    """A planner's summary (success rate, successes, final distance, seconds per action...) and its episodes."""
    from vjepa2.plan.mpc import summarize

    summary = summarize(rows)
    return {"planner": name, "cem": settings, "successes": sum(bool(r["success"]) for r in rows), **summary,
            "episode_rows": rows}  # fmt: skip


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table: planner, success % (k/n), mean final distance, seconds per action, CEM settings."""
    lines = [
        "| planner | success | final distance (m) | s / action | CEM |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        success = f"{100 * r['success_rate']:.0f}% ({r['successes']}/{r['episodes']})"
        lines.append(
            f"| {r['planner']} | {success} | {r['final_distance']:.3f} | {r['seconds_per_action']:.3f} | {r['cem']} |"
        )
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _evaluate(name: str, planner: Any, args: argparse.Namespace, image_size: int, budgets: Sequence[int]):
    """Episode rows of one planner; the latent planner's first episode goes to ``args.gif``."""
    from vjepa2.plan.mpc import evaluate

    print(f"{name}: {args.episodes} episodes of {args.env}...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        gif_dir = tmp if (args.gif and name == "latent") else None
        rows = evaluate(
            lambda: make_env(args.env, image_size), planner, episodes=args.episodes, seed=args.seed,
            budgets=budgets, max_steps=args.max_steps, gif_dir=gif_dir, gifs=1,
        )  # fmt: skip
        if gif_dir is not None:
            Path(args.gif).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(tmp) / "episode_000.gif"), args.gif)
    return rows


def add_plan_args(p: argparse.ArgumentParser) -> None:
    from vjepa2.envs import FRANKA_ENVS

    _add_model_args(p)
    p.add_argument("--env", required=True, choices=sorted(FRANKA_ENVS), help="environment (others: eval-plan)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument(
        "--seed",
        type=int,
        default=HELD_OUT_SEED,
        help="env seed of the first episode, then seed + 1, ... (default: above the seeds `vjepa2 collect` uses)",
    )
    p.add_argument("--cem", choices=sorted(CEM_PRESETS), default="paper", help="CEM preset (cpu: 128x4)")
    for flag in ("samples", "iterations", "topk", "horizon"):
        p.add_argument(f"--{flag}", type=int, help=f"override the preset's {flag}")
    p.add_argument("--radius", type=float, help="override the L1-ball radius of the xyz action")
    p.add_argument("--oracle-cem", choices=sorted(CEM_PRESETS), help="oracle CEM preset (default: same as --cem)")
    p.add_argument("--baselines", default="random,oracle", help="comma-separated from random,oracle; '' for none")
    p.add_argument("--max-steps", type=int, help="step cap per episode (default: the task's budgets)")
    p.add_argument("--image-size", type=int, help="env image size (default: the world model's img_size)")
    p.add_argument("--gif", help="GIF of the latent planner's first episode next to its goal image")
    p.add_argument("--out", help="JSON file with the table rows and every episode")
    add_overwrite_arg(p)


def _parse_baselines(text: str, allowed: Sequence[str] = BASELINES) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(allowed)}")
    return names


def run_plan(args: argparse.Namespace) -> int:
    """``vjepa2 plan``: evaluate the latent planner and baselines; print the table, write the GIF and JSON."""
    from vjepa2.envs import ENV_TASKS, ENVS, TASKS
    from vjepa2.weights import WeightsError

    try:
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
        for flag in ("gif", "out"):
            check_output(getattr(args, flag), inputs=[args.world_model], overwrite=args.overwrite, flag=f"--{flag}")
        baselines = _parse_baselines(args.baselines)
        overrides = {k: getattr(args, k) for k in ("samples", "iterations", "topk", "horizon", "radius")}
        cem = cem_config(args.cem, **overrides)
        oracle_cem = cem if args.oracle_cem is None else cem_config(args.oracle_cem, radius=args.radius)
        wm, info = _load(args)
    except (WeightsError, FileNotFoundError, ValueError) as err:
        return _error(str(err))
    task = TASKS[ENV_TASKS[ENVS[args.env]]]
    resolution = wm.predictor.cfg.img_size
    image_size = args.image_size or resolution
    transform = _pick_transform(args.transform, info)
    planners = build_planners(
        baselines, wm, cem, oracle_cem, frame_preprocess(transform, resolution), gripper=task.name != "reach"
    )
    settings = {
        "latent": describe_cem(cem),
        "random": f"uniform L1<={cem.radius:g}",
        "oracle": describe_cem(oracle_cem),
    }
    results = []
    for name, planner in planners.items():
        rows = _evaluate(name, planner, args, image_size, task.subgoal_steps)
        results.append(result_row(name, rows, settings[name]))
    seeds = f"seeds {args.seed}..{args.seed + args.episodes - 1}"
    print(f"{args.env}: {args.episodes} episodes ({seeds}), budgets {list(task.subgoal_steps)}, ", end="")
    print(f"world model {args.world_model} ({transform}, {args.dtype})")
    print(format_table(results))
    if args.gif:
        print(f"GIF of the latent planner's first episode: {args.gif}")
    if args.out:
        record = {
            "env": args.env, "episodes": args.episodes, "seed": args.seed, "budgets": list(task.subgoal_steps),
            "max_steps": args.max_steps, "image_size": image_size, "world_model": str(args.world_model),
            "checkpoint_step": info.step, "transform": transform, "dtype": args.dtype,
            "cem": asdict(cem), "oracle_cem": asdict(oracle_cem), "results": results,
        }  # fmt: skip
        print(f"rows written to {write_json(record, args.out)}")
    return 0


def write_json(record: dict[str, Any], path: str | Path) -> Path:
    """Write ``record`` as strict JSON (NaN -> null), creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(record), indent=1))
    return path


# ---------------------------------------------------------------- energy landscape


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


def add_landscape_args(p: argparse.ArgumentParser) -> None:
    from vjepa2.envs import FRANKA_ENVS

    _add_model_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trajectory", help="trajectory file (.npz/.h5) holding the transition")
    src.add_argument("--env", choices=sorted(FRANKA_ENVS), help="take one scripted step in this env instead")
    p.add_argument("--index", type=int, default=0, help="trajectory step t of the transition t -> t + 1")
    p.add_argument("--seed", type=int, default=0, help="env seed (with --env)")
    p.add_argument("--span", type=float, default=0.075, help="the grid covers [-span, span] in dx and dy (m)")
    p.add_argument("--n", type=int, default=21, help="grid points per axis")
    p.add_argument("--image-size", type=int, help="env image size (default: the world model's img_size)")
    p.add_argument("--out", default="landscape.png", help="PNG heat map")
    add_overwrite_arg(p)


def run_landscape(args: argparse.Namespace) -> int:
    """``vjepa2 energy-landscape``: write the heat map; print the argmin vs the ground truth and the energy gap."""
    from vjepa2.plan.landscape import energy_landscape, plot_landscape
    from vjepa2.weights import WeightsError

    try:
        if args.n < 2 or args.span <= 0:
            raise ValueError(f"--n must be >= 2 and --span > 0, got --n {args.n} --span {args.span}")
        check_output(args.out, inputs=[args.world_model, args.trajectory or ""], overwrite=args.overwrite, flag="--out")
        wm, info = _load(args)
        resolution = wm.predictor.cfg.img_size
        if args.trajectory:
            frames, states, source = transition_from_trajectory(args.trajectory, args.index)
        else:
            frames, states, source = transition_from_env(args.env, args.seed, args.image_size or resolution)
    except (WeightsError, FileNotFoundError, ValueError) as err:
        return _error(str(err))
    pre = frame_preprocess(_pick_transform(args.transform, info), resolution)
    x = torch.stack([pre(f) for f in frames])  # [2, 3, H, W]
    s = torch.from_numpy(states)
    land = energy_landscape(wm, x[0], x[1], s[0], s[1], span=args.span, n=args.n)
    e_gt, e_min = energy_at(wm, x, s[0], land.action), float(land.energy.min())
    spread = float(land.energy.max()) - e_min
    gt, (ax, ay) = land.action.tolist(), land.argmin
    plot_landscape(land, args.out, title=f"energy landscape ({Path(str(args.world_model)).name})")
    print(f"transition: {source}")
    print(f"ground truth: dx={gt[0]:+.4f} dy={gt[1]:+.4f} dz={gt[2]:+.4f} m")
    print(f"argmin:       dx={ax:+.4f} dy={ay:+.4f} m, {100 * math.hypot(ax - gt[0], ay - gt[1]):.2f} cm from it")
    if max(abs(gt[0]), abs(gt[1])) > args.span:
        print(f"note: the ground truth lies outside the grid (span {args.span:g} m)")
    print(
        f"energy: min {e_min:.5f}, ground truth {e_gt:.5f}, gap {e_gt - e_min:+.5f} "
        f"({100 * (e_gt - e_min) / max(spread, 1e-12):.1f}% of the landscape's range {spread:.5f})"
    )
    print(f"landscape written to {args.out}")
    return 0
