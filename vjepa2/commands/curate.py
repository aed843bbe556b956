"""``vjepa2 curate``: retrieve the pool videos that match a target set's cluster distribution."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vjepa2.commands.common import add_clip_args, add_encoder_args, add_overwrite_arg, log
from vjepa2.outputs import check_output


def add_args(p: argparse.ArgumentParser) -> None:
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
    add_encoder_args(p)
    add_clip_args(p)


def run(args: argparse.Namespace) -> int:
    """``vjepa2 curate``: embed pool and target, retrieve by clusters, write the list, a JSON summary and a chart."""
    from vjepa2.data.video import VideoReadError
    from vjepa2.devices import pick_device
    from vjepa2.eval.baselines import pool
    from vjepa2.eval.curate import plot_report, retrieve
    from vjepa2.eval.data import ClipSpec, PathSource
    from vjepa2.eval.features import encode_source, load_frozen_encoder

    try:
        check_output(args.out, inputs=[args.pool, args.target], overwrite=args.overwrite, flag="--out")
        device = pick_device(args.device)
        if args.weights is None:
            log(f"NOTE: no --weights given: {args.model} has RANDOM weights")
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
        log(f"error: {e}")
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
