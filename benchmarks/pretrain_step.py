"""Pretraining step throughput: our V-JEPA 2 step vs the same step built on ``transformers.VJEPA2Model``.

ViT-S-sized encoder (384 wide, 12 layers, 6 heads) and a 6-layer 192-wide predictor, 16 x 128 x 128 clips
(512 tokens), the two official multiblock mask configs, bf16 autocast, AdamW, EMA teacher. Both steps use the same
masks and weights. The baseline is how one builds the step on transformers: its encoder always encodes the whole clip
(it cannot drop masked tokens before the blocks), so each mask config runs the full clip; ours gathers the context
tokens first (official semantics), so the context encoder sees about 25% / 7% of the tokens.

    python benchmarks/pretrain_step.py            # batch 4, 3 warm-up + 5 timed steps each
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import VJEPA2Config, VJEPA2Model

from vjepa2.train.distributed import DistWorld
from vjepa2.train.ema import ema_update
from vjepa2.train.pretrain import build_state, step_masks
from vjepa2.train.pretrain import train_step as our_step
from vjepa2.train.pretrain_config import DataSection, ModelSection, OptimSection, PretrainConfig, RunSection
from vjepa2.weights import ours_to_hf


def hf_model(state) -> VJEPA2Model:
    """A transformers model holding our student's weights (same sizes)."""
    enc, pred = state.student.encoder, state.student.predictor
    cfg = VJEPA2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, crop_size=128, frames_per_clip=16,
        pred_hidden_size=192, pred_num_hidden_layers=6, pred_num_attention_heads=6, pred_num_mask_tokens=10,
        attn_implementation="sdpa",
    )  # fmt: skip
    model = VJEPA2Model(cfg)
    sd = ours_to_hf({"encoder": enc.state_dict(), "predictor": pred.state_dict()})
    model.load_state_dict(sd)
    return model


def hf_step(model, teacher, opt, clips, masks) -> float:
    """The same step on transformers: teacher on the full clip, one student forward per mask config."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            h = teacher(clips.transpose(1, 2), skip_predictor=True).last_hidden_state
            h = F.layer_norm(h, (h.shape[-1],))
        losses = []
        for ctx, tgt in masks:
            out = model(clips.transpose(1, 2), context_mask=[ctx], target_mask=[tgt]).predictor_output
            target = torch.gather(h, 1, tgt[..., None].expand(-1, -1, h.shape[-1]))
            losses.append((out.last_hidden_state.float() - target.float()).abs().mean())
        loss = torch.stack(losses).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    ema_update(teacher.encoder, model.encoder, 0.99925)
    return loss.item()


def timed(fn, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = PretrainConfig(
        model=ModelSection(encoder="vit_small", predictor="vit_small"),
        data=DataSection(frames=16, crop=128, batch_size=args.batch),
        optim=OptimSection(warmup=0, start_lr=1e-4, lr=1e-4, final_lr=1e-4),
        run=RunSection(dtype="bf16", device="cpu"),
    )
    world = DistWorld()
    state = build_state(cfg, world)
    model, teacher = hf_model(state), None
    teacher = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.04)
    clips = torch.randn(args.batch, 3, 16, 128, 128)
    masks = step_masks(cfg, 0, world, torch.device("cpu"))  # the masks of our first step
    ours = timed(lambda: our_step(state, clips, cfg, world), args.warmup, args.runs)
    theirs = timed(lambda: hf_step(model, teacher, opt, clips, masks), args.warmup, args.runs)
    kept = [f"{100 * c.shape[1] / 512:.0f}%" for c, _ in masks]
    print(f"\nViT-S pretraining step, batch {args.batch} x 16 x 128 x 128 (512 tokens), bf16, context kept {kept}")
    print("| step | s/step | clips/s | speed-up |\n|---|---|---|---|")
    print(f"| transformers.VJEPA2Model (baseline) | {theirs:.2f} | {args.batch / theirs:.2f} | 1.00x |")
    print(f"| vjepa2 (ours) | {ours:.2f} | {args.batch / ours:.2f} | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
