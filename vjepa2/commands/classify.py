"""``vjepa2 classify``: the top-5 classes of a video with a trained or official probe."""

from __future__ import annotations

import argparse

from vjepa2.commands.common import add_clip_args, add_encoder_args, log


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="a video or image file")
    p.add_argument("--encoder-weights", help="official .pt, HF folder or pretrain run (default: RANDOM weights)")
    p.add_argument("--probe", required=True, help="probe file: official classifiers .pt or `vjepa2 probe`'s probe.pt")
    p.add_argument("--labels", help="class names: text (one per line) or JSON (list or {name: index})")
    p.add_argument("--index", type=int, default=0, help="which entry of the probe file's classifiers list")
    p.add_argument("--segments", type=int, help="temporal clips (default: the probe file's, else 1)")
    p.add_argument("--views", type=int, help="spatial views (default: the probe file's, else 1)")
    p.add_argument("--out-layers", type=int, nargs="+", help="encoder layers whose tokens the probe reads")
    p.add_argument("--top", type=int, default=5, help="classes to print")
    add_encoder_args(p, model_default=None)
    add_clip_args(p)


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


def run(args: argparse.Namespace) -> int:
    """``vjepa2 classify VIDEO --probe FILE``: print the top classes of one video."""
    from vjepa2.data.video import VideoReadError
    from vjepa2.devices import pick_device
    from vjepa2.eval.classify import classify_video, probe_metadata, read_labels, top_k
    from vjepa2.eval.features import load_frozen_encoder
    from vjepa2.weights import load_classifier

    try:
        meta = probe_metadata(args.probe)
        model = args.model or meta.get("encoder", "vit_large")
        device = pick_device(args.device)
        if args.encoder_weights is None:
            log(f"NOTE: no --encoder-weights given: {model} has RANDOM weights, so the classes are meaningless")
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
        log(f"error: {e}")
        return 2
    heads = ["verb", "noun", "action"] if len(probs) == 3 else [f"head {i}" for i in range(len(probs))]
    for head, p in zip(heads, probs, strict=True):
        if len(probs) > 1:
            print(f"{head}:")
        for rank, (index, name, prob) in enumerate(top_k(p, args.top, names), 1):
            print(f"{rank}. {name}  ({100 * prob:.1f}%, class {index})")
    return 0
