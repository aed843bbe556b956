"""Mask statistics at the official ViT-L scale: our training path vs an independent model of the official collator.

The official loader builds masks per device batch (24 clips of 16 frames at 256 px for ViT-L, 128 GPUs for a
global batch of 3072) and truncates each batch's index lists to that batch's minimum. This script draws the masks
of one global batch three ways and reports context and target tokens per sample (mean over samples and steps):

- ``official collator``: written here from the algorithm (block size from a seeded generator, positions per sample,
  union of blocks, complement, truncation per loader batch of 24), sharing no code with ``vjepa2.masks``;
- ``vjepa2 (data.mask_group=24)``: :func:`vjepa2.train.pretrain.step_masks` of 8 of the 128 ranks of the world;
- ``global truncation (before)``: the same draws truncated to the minimum over all 3072 samples, which is what the
  training path did before ``data.mask_group``.

    python benchmarks/mask_stats.py              # 5 steps, a few minutes on one core
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import replace

import numpy as np
import torch

GRID = (8, 16, 16)  # 16 frames (tubelet 2) x 256 px (patch 16)
CONFIGS = ({"scale": 0.15, "blocks": 8}, {"scale": 0.7, "blocks": 2})  # the two official mask configs


def official_batch(rng: random.Random, cfg: dict, batch: int) -> tuple[list[int], list[int]]:
    """Context and target counts after the official per-batch truncation (an independent model of the collator)."""
    T, H, W = GRID
    keep = int(H * W * cfg["scale"])
    ar = rng.uniform(0.75, 1.5)
    h, w = min(round(math.sqrt(keep * ar)), H), min(round(math.sqrt(keep / ar)), W)
    ctx, tgt = [], []
    for _ in range(batch):
        while True:
            mask = np.zeros((H, W), bool)  # blocks are tubes through all time steps
            for _ in range(cfg["blocks"]):
                top, left = rng.randrange(H - h + 1), rng.randrange(W - w + 1)
                mask[top : top + h, left : left + w] = True
            if not mask.all():
                break
        tgt.append(int(mask.sum()) * T)
        ctx.append(int((~mask).sum()) * T)
    return [min(ctx)] * batch, [min(tgt)] * batch


def ours(step: int, cfg: dict, world_size: int, group: int, batch: int) -> tuple[list[int], list[int]]:
    from vjepa2.masks import MaskConfig
    from vjepa2.train.distributed import DistWorld
    from vjepa2.train.pretrain import step_masks
    from vjepa2.train.pretrain_config import DataSection, ModelSection, PretrainConfig

    pc = PretrainConfig(
        model=ModelSection(encoder="vit_large"),
        data=DataSection(frames=16, crop=256, batch_size=batch, mask_group=group),
        masks=(MaskConfig(spatial_scale=(cfg["scale"], cfg["scale"]), num_blocks=cfg["blocks"]),),
    )
    ctx, tgt = [], []
    for rank in range(0, world_size, max(1, world_size // 8)):  # 8 ranks: each one draws the whole global batch
        c, t = step_masks(replace(pc), step, DistWorld(rank=rank, size=world_size), torch.device("cpu"))[0]
        ctx += [c.shape[1]] * c.shape[0]
        tgt += [t.shape[1]] * t.shape[0]
    return ctx, tgt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=3072, help="global batch")
    parser.add_argument("--per-device", type=int, default=24, help="official per-GPU batch of ViT-L")
    args = parser.parse_args()
    world = args.batch // args.per_device
    n = math.prod(GRID)
    print(f"ViT-L masks, grid {GRID} ({n} tokens), global batch {args.batch} = {world} x {args.per_device}, "
          f"{args.steps} steps; tokens per sample, mean (share of the clip)\n")  # fmt: skip
    print("| mask | path | context tokens | target tokens |")
    print("|---|---|---|---|")
    for i, cfg in enumerate(CONFIGS):
        rows = {}
        rng = random.Random(0)
        off_c, off_t = [], []
        for _ in range(args.steps):
            for _ in range(world):
                c, t = official_batch(rng, cfg, args.per_device)
                off_c += c
                off_t += t
        rows["official collator (per batch of 24)"] = (off_c, off_t)
        our_c, our_t, glob_c, glob_t = [], [], [], []
        for step in range(args.steps):
            c, t = ours(step, cfg, world, args.per_device, args.batch)
            our_c += c
            our_t += t
            c1, t1 = ours(step, cfg, 1, args.batch, args.batch)  # one group: the global minimum
            glob_c += c1
            glob_t += t1
        rows[f"vjepa2, data.mask_group={args.per_device}, {world} ranks"] = (our_c, our_t)
        rows["vjepa2 before: global truncation"] = (glob_c, glob_t)
        for name, (c, t) in rows.items():
            print(f"| {i} ({cfg['blocks']} x {cfg['scale']}) | {name} | {np.mean(c):.0f} ({np.mean(c) / n:.1%}) | "
                  f"{np.mean(t):.0f} ({np.mean(t) / n:.1%}) |")  # fmt: skip


if __name__ == "__main__":
    main()
