"""``vjepa2 eval-plan``: a world model's planning success on Two-Rooms / Wall or Push-T under a published protocol.

Every planner runs the same episodes (:mod:`vjepa2.plan.protocol`; ``docs/planning-protocol.md``):

- ``latent``: CEM in the world model's latent space (L1 energy on the last predicted frame), replanning after every
  planner action; an action is a chunk of ``frameskip`` env actions, ``frameskip = predictor action_dim / env
  action_dim`` (a model trained on 5 stacked 2-D actions plans DINO-WM's frameskip-5 chunks);
- ``random``: uniform chunks in the env's action set;
- ``oracle``: CEM (``--oracle-cem``, the ``cpu`` sizes by default: the simulator is not batched) with the simulator
  as the model, scored by the true-state cost to the goal;
- ``proprio`` (reference for ``--proprio-weight``): the latent planner's CEM on DINO-WM's proprioceptive term alone
  (the integrated agent position against the goal's), no image: what moving the agent to its goal position scores.

The table gives success (latched, k/n), the mean final distance to the goal (px: the dot for Two-Rooms, agent and
block positions for Push-T), mean env steps taken, planning seconds per planner action and the CEM settings; the
published numbers of the protocol follow it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
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
from vjepa2.plan.protocol import PROTOCOLS, PUBLISHED, PlanningProtocol
from vjepa2.plan.report import describe_env_cem, format_benchmark_table, result_row, write_json

EVAL_BASELINES = (*BASELINES, "proprio")


def add_args(p: argparse.ArgumentParser) -> None:
    from vjepa2.envs import BENCHMARK_ENVS

    add_world_model_args(p)
    p.add_argument("--env", required=True, choices=sorted(BENCHMARK_ENVS), help="benchmark environment")
    p.add_argument("--protocol", choices=PROTOCOLS, default="lewm", help="lewm (default) or dinowm")
    p.add_argument("--episodes", type=int, help="episodes (default: the protocol's 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode draw; episode i uses env seed seed + i")
    p.add_argument("--budget", type=int, help="env steps per episode (default: the protocol's)")
    p.add_argument("--trajectories", nargs="+", help="held-out trajectory files/folders with true_states (default: "
                   "rolled out with the noisy scripted policy from seed 1000000)")  # fmt: skip
    p.add_argument("--cem", choices=sorted(CEM_PRESETS), default="paper", help="CEM sizes preset (cpu: 128x4)")
    for flag in ("samples", "iterations", "topk", "horizon"):
        p.add_argument(f"--{flag}", type=int, help=f"override the preset's {flag}")
    p.add_argument("--oracle-cem", choices=sorted(CEM_PRESETS), default="cpu", help="oracle CEM sizes preset")
    p.add_argument("--baselines", default="random,oracle", help=f"comma-separated from {','.join(EVAL_BASELINES)}")
    p.add_argument("--proprio-weight", type=float, default=0.0, help="weight of DINO-WM's proprio term in the "
                   "latent planner's energy (DINO-WM: 1; default 0: the official visual-only energy)")  # fmt: skip
    p.add_argument("--image-size", type=int, help="env image size (default: the world model's img_size)")
    p.add_argument("--gif-dir", help="GIFs of the latent planner's first 3 episodes next to their goal images")
    p.add_argument("--out", help="JSON file with the table rows and every episode")
    add_overwrite_arg(p)


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model and check it fits the env; the protocol, frameskip and CEM settings (ValueError if not)."""
    from vjepa2.plan.protocol import chunk_pose_fn, env_cem, get_protocol, make_benchmark_env

    protocol = get_protocol(args.protocol, args.env)
    budget = args.budget or protocol.budget
    episodes = args.episodes or protocol.episodes
    if episodes < 1 or budget < 1:
        raise ValueError(f"--episodes and --budget must be >= 1, got {episodes} and {budget}")
    sizes = {k: getattr(args, k) for k in ("samples", "iterations", "topk", "horizon")}
    wm, info = load_world_model_args(args)
    pred = wm.predictor.cfg
    env = make_benchmark_env(args.env, args.image_size or pred.img_size)
    if pred.action_dim % env.action_dim or pred.state_dim != env.proprio_dim:
        raise ValueError(
            f"the world model takes {pred.action_dim}-D actions and {pred.state_dim}-D states; {args.env} has "
            f"{env.action_dim}-D actions (or k stacked) and {env.proprio_dim}-D states"
        )
    frameskip = pred.action_dim // env.action_dim
    wm.pose_fn = chunk_pose_fn(env.proprio_step, frameskip, env.action_dim)
    cem = env_cem(cem_config(args.cem, **sizes), env, frameskip)
    oracle_cem = env_cem(cem_config(args.oracle_cem), env, frameskip)
    return {"wm": wm, "info": info, "env": env, "protocol": protocol, "budget": budget, "episodes": episodes,
            "frameskip": frameskip, "cem": cem, "oracle_cem": oracle_cem}  # fmt: skip


def _episodes(args: argparse.Namespace, s: dict[str, Any]) -> list:
    from vjepa2.plan.protocol import build_episodes, load_true_states

    states = load_true_states(args.trajectories) if args.trajectories else None
    return build_episodes(s["env"], s["protocol"], s["episodes"], args.seed, states)


def _planners(args: argparse.Namespace, s: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """``{name: (planner, settings)}``: ``latent`` first, then the baselines."""
    from vjepa2.plan.mpc import LatentPlanner
    from vjepa2.plan.protocol import baseline_planners

    resolution = s["wm"].predictor.cfg.img_size
    pre = frame_preprocess(pick_transform(args.transform, s["info"]), resolution)
    fs = s["frameskip"]
    variant, radius = s["env"].action_bound
    weight, cem = args.proprio_weight, describe_env_cem(s["cem"], fs)
    latent = LatentPlanner(s["wm"], s["cem"], pre, proprio_weight=weight)
    planners = {"latent": (latent, cem + (f", + proprio x{weight:g}" if weight else ""))}
    names = parse_baselines(args.baselines, EVAL_BASELINES)
    baselines = baseline_planners(names, s["env"], fs, s["oracle_cem"], args.seed)
    settings = {"random": f"uniform {variant}<={radius:g} x{fs}", "oracle": describe_env_cem(s["oracle_cem"], fs)}
    planners |= {name: (planner, settings[name]) for name, planner in baselines.items()}
    if "proprio" in names:
        proprio = LatentPlanner(s["wm"], s["cem"], pre, proprio_weight=1.0, visual_weight=0.0)
        planners["proprio"] = (proprio, cem + ", proprio term only")
    return planners


def header(args: argparse.Namespace, s: dict[str, Any], episodes: int) -> str:
    """The line above the table: env, protocol, episodes, goals, budget, frameskip, world model."""
    protocol: PlanningProtocol = s["protocol"]
    goals = f"+{protocol.offset} steps along held-out trajectories" if protocol.goals == "trajectory" else "env random"
    return (
        f"{args.env}, {protocol.name} protocol: {episodes} episodes (seed {args.seed}), goals {goals}, "
        f"budget {s['budget']} env steps, frameskip {s['frameskip']}; world model {args.world_model}"
    )


def run(args: argparse.Namespace) -> int:
    """``vjepa2 eval-plan``: evaluate the latent planner and the baselines; print the table, write the JSON."""
    from vjepa2.envs import env_id
    from vjepa2.plan.protocol import run_protocol
    from vjepa2.weights import WeightsError

    try:
        check_output(args.out, inputs=[args.world_model], overwrite=args.overwrite, flag="--out")
        s = _setup(args)
        planners = _planners(args, s)
        episodes = _episodes(args, s)
    except (WeightsError, FileNotFoundError, ValueError) as err:
        return error(str(err))
    protocol: PlanningProtocol = s["protocol"]
    image_size = s["env"].image_size
    results = []
    for name, (planner, settings) in planners.items():
        print(f"{name}: {len(episodes)} episodes of {args.env} ({protocol.name})...", file=sys.stderr, flush=True)
        gifs = args.gif_dir if name == "latent" else None
        rows = run_protocol(args.env, planner, episodes, s["budget"], s["frameskip"], image_size, gifs)
        results.append(result_row(name, rows, settings))
    print(header(args, s, len(episodes)))
    print(format_benchmark_table(results))
    print(f"published ({protocol.name} protocol): {PUBLISHED[(protocol.name, env_id(args.env))]}")
    if args.out:
        record = {
            "env": args.env, "protocol": asdict(protocol), "episodes": len(episodes), "seed": args.seed,
            "budget": s["budget"], "frameskip": s["frameskip"], "image_size": image_size,
            "world_model": str(args.world_model), "checkpoint_step": s["info"].step, "dtype": args.dtype,
            "cem": asdict(s["cem"]), "oracle_cem": asdict(s["oracle_cem"]), "results": results,
        }  # fmt: skip
        print(f"rows written to {write_json(record, args.out)}")
    return 0
