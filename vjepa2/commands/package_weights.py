"""``vjepa2 package-weights``: a pretraining checkpoint -> bf16 safetensors for ``vjepa2/pretrained``."""

from __future__ import annotations

import argparse
import json


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a vjepa2 pretrain checkpoint (latest.pt)")
    p.add_argument("--out", required=True, help="the safetensors file to write (never overwritten)")
    p.add_argument("--meta", default="{}", help="JSON object stored in the file's metadata (e.g. the commands)")


def run(args: argparse.Namespace) -> int:
    from vjepa2.errors import UserError
    from vjepa2.weights.packaged import package_weights

    try:
        meta = json.loads(args.meta)
    except json.JSONDecodeError as err:
        raise UserError(f"--meta is not JSON: {err}") from err
    out = package_weights(args.checkpoint, args.out, meta)
    print(f"wrote {out}")
    return 0
