"""``vjepa2 probe``, ``vjepa2 classify`` and ``vjepa2 curate``: arguments and runners (see :mod:`vjepa2.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vjepa2.config import ENCODER_PRESETS
from vjepa2.outputs import add_overwrite_arg, check_output


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _add_encoder_args(p: argparse.ArgumentParser, model_default: str | None = "vit_large") -> None:
    p.add_argument("--model", default=model_default, choices=sorted(ENCODER_PRESETS), help="encoder preset")
    p.add_argument("--key", default="target_encoder", help="encoder entry of an official checkpoint")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="fp32", help="encoder precision (bf16 autocast)")


def _add_clip_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, help="frames per clip (default 16)")
    p.add_argument("--fps", type=float, help="sampling rate: frame_step = ceil(video fps) // fps (default 4)")
    p.add_argument("--frame-step", type=int, help="fixed step between source frames (overrides --fps)")
    p.add_argument("--resolution", type=int, help="crop size (default: the preset's img_size)")


# ---------------------------------------------------------------- probe


def add_probe_args(p: argparse.ArgumentParser) -> None:
    from vjepa2.train.config import add_config_args

    add_config_args(p)


def run_probe(args: argparse.Namespace) -> int:
    """``vjepa2 probe --config FILE [key=value ...]``: train probes on frozen features and print the table."""
    from vjepa2.data.video import VideoReadError
    from vjepa2.eval.evaluate import ProbeRunConfig, run
    from vjepa2.train.config import load_config

    try:
        cfg = load_config(ProbeRunConfig, args.config, args.overrides)
        if getattr(args, "show_config", False):
            import yaml

            from vjepa2.train.config import to_dict

            print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
            return 0
        run(cfg)
    except (ValueError, FileNotFoundError, ImportError, VideoReadError) as e:
        _log(f"error: {e}")
        return 2
    return 0


# ---------------------------------------------------------------- classify


def add_classify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="a video or image file")
    p.add_argument("--encoder-weights", help="official .pt, HF folder or pretrain run (default: RANDOM weights)")
    p.add_argument("--probe", required=True, help="probe file: official classifiers .pt or `vjepa2 probe`'s probe.pt")
    p.add_argument("--labels", help="class names: text (one per line) or JSON (list or {name: index})")
    p.add_argument("--index", type=int, default=0, help="which entry of the probe file's classifiers list")
    p.add_argument("--segments", type=int, help="temporal clips (default: the probe file's, else 1)")
    p.add_argument("--views", type=int, help="spatial views (default: the probe file's, else 1)")
    p.add_argument("--out-layers", type=int, nargs="+", help="encoder layers whose tokens the probe reads")
    p.add_argument("--top", type=int, default=5, help="classes to print")
    _add_encoder_args(p, model_default=None)
    _add_clip_args(p)


def _classify_spec(args: argparse.Namespace, recorded: dict, img_size: int):
    """Clip settings: the flags, else what the probe file recorded, else the official defaults."""
    from vjepa2.eval.data import ClipSpec

    def pick(name: str, default):
        value = getattr(args, name)
        return value if value is not None else recorded.get(name, default)

    if args.frame_step is not None or args.fps is not None:
        fps, step = args.fps or 4.0, args.frame_step
    else:
        fps, step = recorded.get("fps") or 4.0, recorded.get("frame_step")
    return ClipSpec(
        frames=pick("frames", 16),
        fps=fps,
        frame_step=step,
        resolution=pick("resolution", None) or img_size,
        segments=pick("segments", 1),
        views=pick("views", 1),
        **({"resize_ratio": recorded["resize_ratio"]} if "resize_ratio" in recorded else {}),
    )


def run_classify(args: argparse.Namespace) -> int:
    """``vjepa2 classify VIDEO --probe FILE``: print the top classes of one video."""
    from vjepa2.data.video import VideoReadError
    from vjepa2.eval.classify import classify_video, probe_metadata, read_labels, top_k
    from vjepa2.eval.features import load_frozen_encoder, pick_device
    from vjepa2.weights import load_classifier

    try:
        meta = probe_metadata(args.probe)
        model = args.model or meta.get("encoder", "vit_large")
        device = pick_device(args.device)
        if args.encoder_weights is None:
            _log(f"NOTE: no --encoder-weights given: {model} has RANDOM weights, so the classes are meaningless")
        encoder = load_frozen_encoder(model, args.encoder_weights, args.key).to(device)
        probe = load_classifier(args.probe, index=args.index, num_heads=meta.get("num_heads")).eval()
        if probe.cfg.embed_dim != encoder.cfg.embed_dim:
            raise ValueError(
                f"{args.probe} reads {probe.cfg.embed_dim}-wide tokens but the {model} encoder is "
                f"{encoder.cfg.embed_dim} wide: pass the --model the probe was trained on"
            )
        spec = _classify_spec(args, meta.get("clip", {}), encoder.cfg.img_size)
        names = read_labels(args.labels) if args.labels else None
        if names is not None and len(names) != probe.cfg.heads[0]:
            raise ValueError(f"{args.labels}: {len(names)} class names for a probe with {probe.cfg.heads[0]} classes")
        out_layers = args.out_layers or meta.get("out_layers") or None
        probs = classify_video(args.video, encoder, probe, spec, out_layers, args.dtype)
    except (ValueError, FileNotFoundError, VideoReadError) as e:
        _log(f"error: {e}")
        return 2
    heads = ["verb", "noun", "action"] if len(probs) == 3 else [f"head {i}" for i in range(len(probs))]
    for head, p in zip(heads, probs, strict=True):
        if len(probs) > 1:
            print(f"{head}:")
        for rank, (index, name, prob) in enumerate(top_k(p, args.top, names), 1):
            print(f"{rank}. {name}  ({100 * prob:.1f}%, class {index})")
    return 0


# ---------------------------------------------------------------- curate


def add_curate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", required=True, help="uncurated videos: folder (recursive), CSV list or glob")
    p.add_argument("--target", required=True, help="videos whose distribution to match: folder, CSV list or glob")
    p.add_argument("--out", type=Path, required=True, help="retrieved list (CSV, one path per line)")
    add_overwrite_arg(p)
    p.add_argument("--clusters", type=int, default=8, help="k-means clusters of the pool")
    p.add_argument("--size", type=int, help="videos to retrieve (default: as many as the target holds)")
    p.add_argument("--weights", help="encoder weights: official .pt, HF folder or pretrain run (default: RANDOM)")
    p.add_argument("--report", type=Path, help="bar chart PNG (default: next to --out, .png)")
    p.add_argument("--batch-size", type=int, default=8, help="videos per encoder batch")
    p.add_argument("--seed", type=int, default=0, help="k-means seed")
    _add_encoder_args(p)
    _add_clip_args(p)


def run_curate(args: argparse.Namespace) -> int:
    """``vjepa2 curate``: embed pool and target, retrieve by clusters, write the list, a JSON summary and a chart."""
    from vjepa2.data.video import VideoReadError
    from vjepa2.eval.baselines import pool
    from vjepa2.eval.curate import plot_report, retrieve
    from vjepa2.eval.data import ClipSpec, PathSource
    from vjepa2.eval.features import encode_source, load_frozen_encoder, pick_device

    try:
        check_output(args.out, inputs=[args.pool, args.target], overwrite=args.overwrite, flag="--out")
        device = pick_device(args.device)
        if args.weights is None:
            _log(f"NOTE: no --weights given: {args.model} has RANDOM weights")
        encoder = load_frozen_encoder(args.model, args.weights, args.key)
        spec = ClipSpec(
            frames=args.frames or 16,
            fps=args.fps or 4.0,
            frame_step=args.frame_step,
            resolution=args.resolution or encoder.cfg.img_size,
        )
        sources = {name: PathSource(getattr(args, name)) for name in ("pool", "target")}
        feats = {
            name: pool(encode_source(encoder, s, spec, None, device, args.dtype, args.batch_size, progress=True))
            for name, s in sources.items()
        }
        cur = retrieve(feats["pool"], feats["target"], args.clusters, args.size or len(sources["target"]), args.seed)
    except (ValueError, FileNotFoundError, ImportError, VideoReadError) as e:
        _log(f"error: {e}")
        return 2
    paths = [sources["pool"].paths[i] for i in cur.selected]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(f"{p}\n" for p in paths))
    report = plot_report(cur, args.report or args.out.with_suffix(".png"))
    hist = {name: [round(float(v), 4) for v in h] for name, h in cur.histograms().items()}
    summary = {"pool": len(sources["pool"]), "target": len(sources["target"]), "retrieved": len(paths)}
    args.out.with_suffix(".json").write_text(json.dumps({**summary, "clusters": args.clusters, "shares": hist}))
    print(f"retrieved {len(paths)} of {summary['pool']} pool videos -> {args.out}; chart {report}")
    return 0
