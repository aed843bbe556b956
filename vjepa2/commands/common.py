"""Arguments and helpers shared by several commands (the libraries below hold no argparse)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from vjepa2.config import AC_PREDICTOR_PRESETS, ENCODER_PRESETS
from vjepa2.config_io import load_config, to_dict
from vjepa2.models.encode import DTYPES

if TYPE_CHECKING:
    from vjepa2.plan.load import CheckpointInfo
    from vjepa2.plan.world_model import WorldModel

T = TypeVar("T")


def log(msg: str) -> None:
    """A progress or warning line on stderr (stdout carries the results)."""
    print(msg, file=sys.stderr, flush=True)


def add_overwrite_arg(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: without it, an existing output file is an error (see :func:`vjepa2.outputs.check_output`)."""
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and trailing ``key=value`` overrides (the arguments of every training command)."""
    parser.add_argument("--config", help="YAML file overriding the defaults (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides applied last, e.g. optim.lr=3e-4")
    parser.add_argument(
        "--show-config", action="store_true", help="print the resolved config (every section and key) and exit"
    )


def resolve_config(cls: type[T], args: argparse.Namespace) -> T | None:
    """``cls`` from ``--config`` then the overrides; None after printing it when ``--show-config`` asks only that."""
    cfg = load_config(cls, args.config, args.overrides)
    if getattr(args, "show_config", False):
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return None
    return cfg


def run_training(cls: type[T], train_fn: Any, args: argparse.Namespace) -> int:
    """Resolve ``cls`` from ``args`` (``--config`` then overrides), run ``train_fn(cfg)``, tear down distributed."""
    from vjepa2.train import distributed

    cfg = resolve_config(cls, args)
    if cfg is None:
        return 0
    try:
        out = train_fn(cfg)
        distributed.cleanup(barrier=True)
    finally:
        distributed.cleanup()
    print(f"checkpoints and metrics in {out}")
    return 0


def error(message: str) -> int:
    """Print ``error: message`` and return the user-error exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def load_world_model_args(args: argparse.Namespace) -> tuple[WorldModel, CheckpointInfo]:
    """The world model of ``--world-model`` (with ``--encoder``/``--predictor``/``--dtype``/``--device``)."""
    from vjepa2.plan.load import load_world_model, read_checkpoint_info

    info = read_checkpoint_info(args.world_model)
    wm = load_world_model(args.world_model, args.dtype, args.device, args.encoder, args.predictor)
    return wm, info


def add_world_model_args(p: argparse.ArgumentParser) -> None:
    """The arguments that load a world model, shared by ``plan``, ``eval-plan`` and ``energy-landscape``."""
    p.add_argument("--world-model", required=True, metavar="CKPT", help="train-ac latest.pt or vjepa2-ac-vitg.pt")
    p.add_argument("--encoder", choices=sorted(ENCODER_PRESETS), help="encoder preset (files without configs)")
    p.add_argument("--predictor", choices=sorted(AC_PREDICTOR_PRESETS), help="AC predictor preset (idem)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="world-model autocast dtype")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--transform", type=transform_arg, default="auto", help="auto (as trained), resize, center, droid[+blur=S]"
    )


def transform_arg(value: str) -> str:
    """argparse type of ``--transform``: ``auto`` or a name :func:`~vjepa2.data.transforms.parse_transform` takes."""
    from vjepa2.data.transforms import parse_transform

    if value != "auto":
        try:
            parse_transform(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return value


def parse_baselines(text: str, allowed: Sequence[str]) -> list[str]:
    """``"random,oracle"`` -> ``["random", "oracle"]`` (``""`` or ``none``: no baseline); ValueError if unknown."""
    names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(allowed)}")
    return names


def add_encoder_args(p: argparse.ArgumentParser, model_default: str | None = "vit_large") -> None:
    """``--model``, ``--key``, ``--device``, ``--dtype`` of the commands that run a frozen encoder."""
    p.add_argument("--model", default=model_default, choices=sorted(ENCODER_PRESETS), help="encoder preset")
    p.add_argument("--key", default="target_encoder", help="encoder entry of an official checkpoint")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="fp32", help="encoder precision (bf16 autocast)")


def add_clip_args(p: argparse.ArgumentParser) -> None:
    """How clips are sampled from videos: ``--frames``, ``--fps``, ``--frame-step``, ``--resolution``."""
    p.add_argument("--frames", type=int, help="frames per clip (default 16)")
    p.add_argument("--fps", type=float, help="sampling rate: frame_step = ceil(video fps) // fps (default 4)")
    p.add_argument("--frame-step", type=int, help="fixed step between source frames (overrides --fps)")
    p.add_argument("--resolution", type=int, help="crop size (default: the preset's img_size)")
