"""``vjepa2 energy-landscape``: sweep ``(dx, dy)`` around one transition, from a trajectory file or from one scripted
env step, and report the argmin against the ground-truth action (paper Fig. 9)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vjepa2.commands.common import add_overwrite_arg, add_world_model_args, error, load_world_model_args
from vjepa2.outputs import check_output
from vjepa2.plan.landscape import AXES, energy_at, transition_from_env, transition_from_trajectory
from vjepa2.plan.load import frame_preprocess, pick_transform


def add_args(p: argparse.ArgumentParser) -> None:
    from vjepa2.envs import FRANKA_ENVS

    add_world_model_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trajectory", help="trajectory file (.npz/.h5) holding the transition")
    src.add_argument("--env", choices=sorted(FRANKA_ENVS), help="take one scripted step in this env instead")
    p.add_argument("--index", type=int, default=0, help="trajectory step t of the transition t -> t + 1")
    p.add_argument("--seed", type=int, default=0, help="env seed (with --env)")
    p.add_argument("--axes", default="x,y", help="the two action dims swept: x, y, z, roll, pitch, yaw, gripper")
    p.add_argument("--span", type=float, default=0.075, help="the grid covers [-span, span] (m or rad) on each axis")
    p.add_argument("--gripper-span", type=float, default=1.0, help="the grid's half-width on the gripper axis")
    p.add_argument("--n", type=int, default=21, help="grid points per axis")
    p.add_argument("--image-size", type=int, help="env image size (default: the world model's img_size)")
    p.add_argument("--out", default="landscape.png", help="PNG heat map")
    add_overwrite_arg(p)


def run(args: argparse.Namespace) -> int:
    """``vjepa2 energy-landscape``: write the heat map; print the argmin vs the ground truth and the energy gap."""
    from vjepa2.plan.landscape import energy_landscape, plot_landscape
    from vjepa2.weights import WeightsError

    try:
        if args.n < 2 or args.span <= 0:
            raise ValueError(f"--n must be >= 2 and --span > 0, got --n {args.n} --span {args.span}")
        axes = tuple(a.strip() for a in args.axes.split(","))
        if len(axes) != 2 or len(set(axes)) != 2 or not set(axes) <= set(AXES):
            raise ValueError(f"--axes must name two different dims of {list(AXES)}, got {args.axes!r}")
        check_output(args.out, inputs=[args.world_model, args.trajectory or ""], overwrite=args.overwrite, flag="--out")
        wm, info = load_world_model_args(args)
        resolution = wm.predictor.cfg.img_size
        if args.trajectory:
            frames, states, source = transition_from_trajectory(args.trajectory, args.index)
        else:
            frames, states, source = transition_from_env(args.env, args.seed, args.image_size or resolution)
    except (WeightsError, FileNotFoundError, ValueError) as err:
        return error(str(err))
    pre = frame_preprocess(pick_transform(args.transform, info), resolution)
    x = torch.stack([pre(f) for f in frames])  # [2, 3, H, W]
    s = torch.from_numpy(states)
    spans = tuple(args.gripper_span if a == "gripper" else args.span for a in axes)
    land = energy_landscape(wm, x[0], x[1], s[0], s[1], span=spans, n=args.n, axes=axes)
    e_gt, e_min = energy_at(wm, x, s[0], land.action), float(land.energy.min())
    spread = float(land.energy.max()) - e_min
    (a, b), (ta, tb), (ma, mb) = axes, land.truth, land.argmin
    plot_landscape(land, args.out, title=f"energy landscape ({Path(str(args.world_model)).name})")
    print(f"transition: {source}")
    print("ground truth: " + " ".join(f"d{k}={v:+.4f}" for k, v in zip(AXES, land.action.tolist(), strict=True)))
    print(f"argmin:       d{a}={ma:+.4f} d{b}={mb:+.4f}; off by d{a} {ma - ta:+.4f}, d{b} {mb - tb:+.4f}")
    if abs(ta) > spans[0] or abs(tb) > spans[1]:
        print(f"note: the ground truth lies outside the grid (spans {spans})")
    print(
        f"energy: min {e_min:.5f}, ground truth {e_gt:.5f}, gap {e_gt - e_min:+.5f} "
        f"({100 * (e_gt - e_min) / max(spread, 1e-12):.1f}% of the landscape's range {spread:.5f})"
    )
    print(f"landscape written to {args.out}")
    return 0
