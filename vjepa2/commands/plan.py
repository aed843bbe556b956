"""``vjepa2 plan`` and ``vjepa2 energy-landscape``: a trained world model at work in the simulated Franka tabletop.

``plan`` follows the V-JEPA 2-AC protocol (arXiv 2506.09985, Sec. 4; ``planning-benchmarks.md`` §8-9): every
planner runs the same episodes (env seeds ``seed, seed + 1, ...``), plans one action with CEM, executes it and
re-plans; multi-stage tasks switch goal images on the task's budgets (pick-and-place: grasp 4, near-goal 10,
place 4). ``--pregrasp`` (not the paper's protocol) puts two goal images before a grasp: the open fingers around
the cube (6 steps), then closed on it (3 steps). Baselines under the same protocol:

- ``random``: uniform actions in the L1 ball of the CEM radius (gripper too, except for reach);
- ``oracle``: the same CEM, each candidate replayed in the simulator (physics only) and scored by the env's true
  cost against the active goal's configuration (``FrankaEnv.oracle_cost``), not by pixels.

The table gives the success rate, the mean final distance to the final goal (metres: the end effector for reach,
the cube otherwise), planning seconds per action and the CEM settings.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vjepa2.commands.common import (
    add_overwrite_arg,
    add_world_model_args,
    error,
    load_world_model_args,
    parse_baselines,
)
from vjepa2.outputs import check_output
from vjepa2.plan.cem import CEM_PRESETS, cem_config
from vjepa2.plan.load import frame_preprocess, pick_transform
from vjepa2.plan.mpc import BASELINES
from vjepa2.plan.protocol import HELD_OUT_SEED
from vjepa2.plan.report import describe_cem, format_table, result_row, write_json
from vjepa2.plan.tabletop import build_planners, make_env


def _evaluate(name: str, planner: Any, args: argparse.Namespace, image_size: int, budgets: Sequence[int]):
    """Episode rows of one planner; the latent planner's first episode goes to ``args.gif``."""
    from vjepa2.plan.mpc import evaluate

    print(f"{name}: {args.episodes} episodes of {args.env}...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        gif_dir = tmp if (args.gif and name == "latent") else None
        rows = evaluate(
            lambda: make_env(args.env, image_size, args.pregrasp), planner, episodes=args.episodes, seed=args.seed,
            budgets=budgets, max_steps=args.max_steps, gif_dir=gif_dir, gifs=1,
        )  # fmt: skip
        if gif_dir is not None:
            Path(args.gif).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(tmp) / "episode_000.gif"), args.gif)
    return rows


def add_args(p: argparse.ArgumentParser) -> None:
    from vjepa2.envs import FRANKA_ENVS

    add_world_model_args(p)
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
    p.add_argument(
        "--close-gripper",
        type=int,
        metavar="H",
        help="force the gripper delta to +1 (close) from horizon step H on: the official notebook's close_gripper "
        "(task knowledge, off by default; 0 keeps a held object held)",
    )
    p.add_argument("--oracle-cem", choices=sorted(CEM_PRESETS), help="oracle CEM preset (default: same as --cem)")
    p.add_argument("--baselines", default="random,oracle", help="comma-separated from random,oracle; '' for none")
    p.add_argument("--max-steps", type=int, help="step cap per episode (default: the task's budgets)")
    p.add_argument(
        "--pregrasp", action="store_true", help="grasp tasks: pre-grasp, closed goal images first (not official)"
    )
    p.add_argument("--image-size", type=int, help="env image size (default: the world model's img_size)")
    p.add_argument("--gif", help="GIF of the latent planner's first episode next to its goal image")
    p.add_argument("--out", help="JSON file with the table rows and every episode")
    add_overwrite_arg(p)


def run(args: argparse.Namespace) -> int:
    """``vjepa2 plan``: evaluate the latent planner and baselines; print the table, write the GIF and JSON."""
    from vjepa2.envs import ENV_TASKS, ENVS, TASKS
    from vjepa2.weights import WeightsError

    task = TASKS[ENV_TASKS[ENVS[args.env]]]
    try:
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
        if args.pregrasp and not task.can_pregrasp:
            raise ValueError(f"--pregrasp applies to tasks that start with a grasp, not to {args.env}")
        for flag in ("gif", "out"):
            check_output(getattr(args, flag), inputs=[args.world_model], overwrite=args.overwrite, flag=f"--{flag}")
        baselines = parse_baselines(args.baselines, BASELINES)
        overrides = {
            k: getattr(args, k) for k in ("samples", "iterations", "topk", "horizon", "radius", "close_gripper")
        }
        cem = cem_config(args.cem, **overrides)
        oracle_overrides = {"radius": args.radius, "close_gripper": args.close_gripper}
        oracle_cem = cem if args.oracle_cem is None else cem_config(args.oracle_cem, **oracle_overrides)
        wm, info = load_world_model_args(args)
    except (WeightsError, FileNotFoundError, ValueError) as err:
        return error(str(err))
    budgets = task.budgets(args.pregrasp)
    resolution = wm.predictor.cfg.img_size
    image_size = args.image_size or resolution
    transform = pick_transform(args.transform, info)
    planners = build_planners(
        baselines, wm, cem, oracle_cem, frame_preprocess(transform, resolution), gripper=task.name != "reach"
    )
    settings = {
        "latent": describe_cem(cem),
        "random": f"uniform L1<={cem.radius:g}" + (" gripper closed" if cem.close_gripper == 0 else ""),
        "oracle": describe_cem(oracle_cem),
    }
    results = []
    for name, planner in planners.items():
        rows = _evaluate(name, planner, args, image_size, budgets)
        results.append(result_row(name, rows, settings[name]))
    seeds = f"seeds {args.seed}..{args.seed + args.episodes - 1}"
    print(f"{args.env}: {args.episodes} episodes ({seeds}), budgets {list(budgets)}, ", end="")
    print(f"world model {args.world_model} ({transform}, {args.dtype})")
    print(format_table(results))
    if args.gif:
        print(f"GIF of the latent planner's first episode: {args.gif}")
    if args.out:
        record = {
            "env": args.env, "episodes": args.episodes, "seed": args.seed, "budgets": list(budgets),
            "max_steps": args.max_steps, "image_size": image_size, "world_model": str(args.world_model),
            "checkpoint_step": info.step, "transform": transform, "dtype": args.dtype,
            "cem": asdict(cem), "oracle_cem": asdict(oracle_cem), "results": results,
        }  # fmt: skip
        print(f"rows written to {write_json(record, args.out)}")
    return 0
