"""``vjepa2 prepare-mix``: render the general pretraining mix into clip banks, offline."""

from __future__ import annotations

import argparse


def add_args(p: argparse.ArgumentParser) -> None:
    from vjepa2.train.mix import MIX

    p.add_argument("--out", default="runs/mix", help="folder for the banks and mix.json (default: %(default)s)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default: %(default)s)")
    p.add_argument("--frames", type=int, default=16, help="frames per stored clip (default: %(default)s)")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every source's clip count (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the renders (default: %(default)s)")
    p.add_argument("--sources", nargs="+", choices=[s.name for s in MIX], help="only these banks (default: all)")


def run(args: argparse.Namespace) -> int:
    from vjepa2.errors import UserError
    from vjepa2.train.mix import prepare_mix

    if args.size < 16 or args.frames < 2 or args.scale <= 0:
        raise UserError(
            f"need --size >= 16, --frames >= 2 and --scale > 0 (got {args.size}, {args.frames}, {args.scale})"
        )
    manifest = prepare_mix(args.out, args.size, args.frames, args.scale, args.seed, args.sources)
    print(f"mix ready: {manifest} (train with data.datasets=[{manifest}])")
    return 0
