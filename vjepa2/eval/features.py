"""Frozen-encoder features for probes, computed once (batched, bf16 on CPU) and kept in memory or on disk."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm


@torch.inference_mode()
def extract_features(
    encoder: nn.Module,
    batches: Iterable[torch.Tensor],
    device: torch.device | str = "cpu",
    dtype: str = "bf16",
    out_layers: Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Encode clips ``[B, 3, T, H, W]`` batch by batch into token features ``[N, tokens, D]`` (float32 on CPU).

    With ``out_layers`` the listed layers' normed outputs are concatenated along the token axis (multilevel probes).
    """
    encoder = encoder.eval().to(device)
    device = torch.device(device)
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()
    feats = []
    for clips in tqdm(batches, desc="features", disable=not progress, leave=False):
        with cast:
            out = encoder(clips.to(device), out_layers=out_layers) if out_layers else encoder(clips.to(device))
        out = torch.cat(out, dim=1) if isinstance(out, list) else out
        feats.append(out.float().cpu())
    return torch.cat(feats)


def cached_features(path: str | Path, compute) -> torch.Tensor:
    """Load features from ``path`` if present, else ``compute()`` them and save (atomically) for next time."""
    from vjepa2.train.checkpoint import atomic_save

    path = Path(path)
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    feats = compute()
    atomic_save(feats, path)
    return feats
