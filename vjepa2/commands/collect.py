"""``vjepa2 collect``: record trajectories (frames, poses, actions) from a simulator, scripted or random policy."""

from __future__ import annotations

import argparse

from vjepa2.envs.collect import collect
from vjepa2.errors import UserError


def add_args(parser: argparse.ArgumentParser) -> None:
    from vjepa2.envs import ENVS  # imports pybullet/gymnasium only when collect runs

    parser.add_argument("--env", required=True, choices=sorted(ENVS), help="environment")
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--out", required=True, help="folder for the trajectory files")
    parser.add_argument("--policy", choices=("scripted", "random"), default="scripted")
    parser.add_argument("--noise", type=float, default=0.3, help="scripted policy: chance of a random action")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, help="steps per episode (default: the task's budget)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1 or (args.steps is not None and args.steps < 1) or args.image_size < 8:
        raise UserError(
            f"need --episodes >= 1, --steps >= 1 and --image-size >= 8 "
            f"(got {args.episodes}, {args.steps}, {args.image_size})"
        )
    if not 0.0 <= args.noise <= 1.0:
        raise UserError(f"--noise is a probability in [0, 1], got {args.noise}")
    paths = collect(args.env, args.episodes, args.out, args.policy, args.noise, args.image_size, args.steps, args.seed)
    print(f"{len(paths)} trajectories in {args.out}")
    return 0
