"""Classify one video with a frozen encoder and an attentive probe (official ``classifiers`` files or ``vjepa2 probe``).

The clip settings come from, in order: the caller, the probe file (``vjepa2 probe`` records them), the official
defaults (16 frames at 4 fps, one clip, one view, the encoder's resolution). For the official SSv2 probe
(``ssv2-vitl-16x2x3.pt``) pass ``segments=2, views=3, frame_step=4`` as its name says (16 frames x 2 clips x 3 views).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vjepa2.errors import UserError
from vjepa2.eval.data import ClipSpec
from vjepa2.eval.views import aggregate_views, clip_views, read_segments


def read_labels(path: str | Path) -> list[str]:
    """Class names by index from a text file (one per line) or JSON (a list, ``{name: index}`` or ``{index: name}``)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() != ".json":
        return [line.strip() for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, list):
        return [str(x) for x in data]
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON list or dict of class names, got {type(data).__name__}")
    pairs = [(int(v), k) if str(v).isdigit() else (int(k), v) for k, v in data.items()]
    names = dict(pairs)
    return [str(names.get(i, i)) for i in range(max(names) + 1)]


def probe_metadata(path: str | Path) -> dict[str, Any]:
    """What ``vjepa2 probe`` recorded in a probe file (clip settings, out_layers, heads); ``{}`` for other files."""
    from vjepa2.weights.official import read_checkpoint

    ckpt = read_checkpoint(path)
    meta = dict(ckpt.get("vjepa2", {}))
    if "probe_num_heads" in ckpt:
        meta["num_heads"] = int(ckpt["probe_num_heads"])
    return meta


@torch.inference_mode()
def classify_video(
    path: str | Path,
    encoder: torch.nn.Module,
    probe: torch.nn.Module,
    spec: ClipSpec,
    out_layers: list[int] | None = None,
    dtype: str = "fp32",
) -> list[torch.Tensor]:
    """Class probabilities ``[C]`` of one video per probe head (softmax averaged over the views)."""
    device = next(encoder.parameters()).device
    clips = clip_views(read_segments(path, spec.frames, spec.segments, spec.fps, spec.frame_step), **_view_args(spec))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        out = encoder(clips.to(device), out_layers=out_layers) if out_layers else encoder(clips.to(device))
    tokens = torch.cat(out, dim=1) if isinstance(out, list) else out  # [S * V, N, D]
    x = aggregate_views(tokens.float(), spec.segments, spec.views)[0]  # [V, S * N, D]
    logits = probe.to(device)(x)
    return [z.softmax(-1).mean(0).cpu() for z in (logits if isinstance(logits, list) else [logits])]


def _view_args(spec: ClipSpec) -> dict[str, Any]:
    return {"resolution": spec.resolution, "views": spec.views, "resize_ratio": spec.resize_ratio}


def top_k(probs: torch.Tensor, k: int = 5, names: list[str] | None = None) -> list[tuple[int, str, float]]:
    """The ``k`` most likely classes as ``(index, name, probability)``; names default to the index."""
    values, idx = probs.topk(min(k, len(probs)))
    names = names or []
    return [(int(i), names[i] if i < len(names) else str(int(i)), float(v)) for v, i in zip(values, idx, strict=True)]
