"""Frozen-encoder features for probes, computed batched (bf16 on CPU); the on-disk cache is :mod:`.cache`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from vjepa2.eval.cache import resolve_weights
from vjepa2.eval.data import AugmentedClipDataset, ClipDataset, clip_batches


@torch.inference_mode()
def extract_features(
    encoder: nn.Module,
    batches: Iterable[torch.Tensor],
    device: torch.device | str = "cpu",
    dtype: str = "bf16",
    out_layers: Sequence[int] | None = None,
    progress: bool = False,
    out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Encode clips ``[B, 3, T, H, W]`` batch by batch into token features ``[N, tokens, D]`` (on CPU).

    With ``out_layers`` the listed layers' normed outputs are concatenated along the token axis (multilevel probes).
    ``out_dtype=torch.float16`` halves the memory (and disk) of large feature sets.
    """
    encoder = encoder.eval().to(device)
    device = torch.device(device)
    cast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()
    feats = []
    for clips in tqdm(batches, desc="features", disable=not progress, leave=False):
        with cast:
            out = encoder(clips.to(device), out_layers=out_layers) if out_layers else encoder(clips.to(device))
        out = torch.cat(out, dim=1) if isinstance(out, list) else out
        feats.append(out.to(device="cpu", dtype=out_dtype))
    return torch.cat(feats)


def load_frozen_encoder(
    preset: str, weights: str | Path | None, key: str = "target_encoder", seed: int = 0
) -> nn.Module:
    """The encoder ``preset`` in eval mode, from weights (see :func:`resolve_weights`) or random with ``seed``."""
    from vjepa2.weights import load_encoder

    if weights is None:
        torch.manual_seed(seed)  # the same random encoder on every run
    return load_encoder(preset, resolve_weights(weights), key=key).eval().requires_grad_(False)


def encode_source(
    encoder: nn.Module,
    source: Any,
    spec: Any,
    out_layers: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    dtype: str = "bf16",
    batch_size: int = 8,
    num_workers: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Probe inputs ``[N, V, S * L * tokens, D]`` (float16) of every item of a :mod:`~vjepa2.eval.data` source.

    Each of the ``S`` segments x ``V`` views of an item is encoded alone; a view's probe input is the tokens of all
    its segments (and of all ``L`` ``out_layers``) concatenated.
    """
    from vjepa2.eval.views import aggregate_views

    batches = clip_batches(source, spec, batch_size, num_workers)
    tokens = extract_features(encoder, batches, device, dtype, out_layers, progress, out_dtype=torch.float16)
    return aggregate_views(tokens, spec.segments, spec.views)


def stream_batches(
    encoder: nn.Module,
    source: Any,
    spec: Any,
    aug: Any = None,
    epoch: int = 0,
    batch_size: int = 64,
    encode_batch: int = 8,
    out_layers: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    dtype: str = "bf16",
    num_workers: int = 0,
    shuffle: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Probe training batches computed on the fly: (features ``[b, V, S * L * tokens, D]`` float16, labels ``[b]``).

    With ``aug`` enabled (a :class:`~vjepa2.data.randaugment.ProbeAugmentConfig`) every clip is freshly augmented
    (one view per segment, ``V = 1``); otherwise the evaluation views of :func:`encode_source`, so that, unshuffled
    and with ``batch_size`` a multiple of ``encode_batch``, the features equal the cached ones. ``max(N //
    batch_size, 1)`` batches per epoch, in an order drawn from ``(aug.seed, epoch)`` when ``shuffle``.
    """
    from vjepa2.eval.views import aggregate_views

    augmented = aug is not None and aug.enabled
    views = 1 if augmented else spec.views
    dataset = AugmentedClipDataset(source, spec, aug, epoch) if augmented else ClipDataset(source, spec)
    n = len(source)
    seed = aug.seed if aug is not None else 0
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)) if shuffle else None
    order = order if order is not None else torch.arange(n)
    order = order[: max(n // batch_size, 1) * batch_size]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    chunks = [b[c : c + encode_batch].tolist() for b in batches for c in range(0, len(b), encode_batch)]
    loader = iter(
        torch.utils.data.DataLoader(dataset, batch_sampler=chunks, num_workers=num_workers, collate_fn=torch.cat)
    )
    for idx in batches:
        parts = [next(loader) for _ in range(0, len(idx), encode_batch)]
        tokens = extract_features(encoder, parts, device, dtype, out_layers, out_dtype=torch.float16)
        yield aggregate_views(tokens, spec.segments, views), source.labels[idx]
