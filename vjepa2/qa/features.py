"""The frozen encoder and its features of synthetic clips, cached on disk by content.

The encoder never trains in video QA, so each clip is encoded once: :func:`clip_features` returns bf16 tokens
``[N_clips, T' * H' * W', D]`` for a list of world seeds and keeps them in ``cache_dir/<key>.safetensors``,
where ``key`` hashes the encoder's weights, the world config and the seeds (a changed encoder or world never
reuses stale features).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vjepa2.data.synthetic import SyntheticWorld, WorldConfig, to_model_layout
from vjepa2.errors import UserError
from vjepa2.weights import load_encoder

_log = logging.getLogger(__name__)
FEATURES_VERSION = 1  # bump when the way features are computed changes


def build_encoder(name: str, init: str = "pretrained", weights: str | None = None) -> torch.nn.Module:
    """The frozen encoder in eval mode: ``pretrained`` (packaged or released by name), ``random`` (seed 0), ``file``."""
    if init == "random":
        torch.manual_seed(0)  # the same random twin every time
        encoder = load_encoder(name)
    elif init == "pretrained":
        encoder = load_encoder(name, pretrained=True)
    elif init == "file":
        encoder = load_encoder(name, weights)
    else:
        raise UserError(f"encoder init must be pretrained, random or file, got {init!r}")
    encoder.requires_grad_(False)
    return encoder.eval()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's parameter and buffer names, shapes and bytes."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _encode(encoder: torch.nn.Module, videos: torch.Tensor, dtype: str) -> torch.Tensor:
    """``[B, 3, T, H, W]`` -> bf16 tokens ``[B, N, D]``."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        return encoder(videos).to(torch.bfloat16)


def clip_features(
    encoder: torch.nn.Module,
    world: WorldConfig,
    seeds: Sequence[int],
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    dtype: str = "bf16",
) -> torch.Tensor:
    """Encoder tokens of the clips of ``seeds``: bf16 ``[len(seeds), N, D]``, row ``i`` for ``seeds[i]``."""
    from safetensors.torch import load_file, save_file

    key = hashlib.sha256(
        json.dumps(
            {"v": FEATURES_VERSION, "enc": weights_digest(encoder), "world": asdict(world), "dtype": dtype},
            sort_keys=True,
        ).encode()
        + np.asarray(seeds, dtype=np.int64).tobytes()
    ).hexdigest()[:24]
    path = Path(cache_dir) / f"{key}.safetensors" if cache_dir else None
    if path is not None and path.is_file():
        return load_file(str(path))["features"]
    sim = SyntheticWorld(world)
    out = []
    for i in range(0, len(seeds), batch_size):
        videos = torch.stack([to_model_layout(sim.render_clip(int(s))[0]) for s in seeds[i : i + batch_size]])
        out.append(_encode(encoder, videos, dtype))
        if (i // batch_size) % 20 == 0:
            _log.info(f"encoded {min(i + batch_size, len(seeds))}/{len(seeds)} clips")
    feats = torch.cat(out)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"features": feats.contiguous()}, str(tmp))
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return feats


def video_to_clip(frames: torch.Tensor, num_frames: int, resolution: int) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` (a decoded video or an image ``[1, H, W, 3]``) -> the model input ``[3, F, R, R]``.

    The short side is resized to ``resolution`` and the centre cropped (the synthetic clips show the whole
    frame); frames are repeated or cut to ``num_frames``; ImageNet normalisation as for the synthetic clips.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UserError(f"expected RGB frames [T, H, W, 3], got shape {tuple(frames.shape)}")
    idx = torch.linspace(0, frames.shape[0] - 1, num_frames).round().long() if frames.shape[0] > 1 else None
    frames = frames[idx] if idx is not None else frames.expand(num_frames, -1, -1, -1)
    x = frames.permute(0, 3, 1, 2).float()  # [F, 3, H, W]
    h, w = x.shape[-2:]
    if (h, w) != (resolution, resolution):
        scale = resolution / min(h, w)
        size = (max(resolution, round(h * scale)), max(resolution, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        x = x[..., top : top + resolution, left : left + resolution]
    uint8 = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # [F, R, R, 3]
    return to_model_layout(uint8.numpy())
