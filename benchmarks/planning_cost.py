"""Seconds per planned action of V-JEPA 2-AC CEM: all samples of an iteration in one batched rollout vs one at a time.

Random weights (the cost does not depend on them). Per action: encode the observation, then CEM (encoding the
goal is cached in MPC and not counted). The one-at-a-time mode runs ``--sequential-iterations`` CEM iterations
and is extrapolated to ``--iterations`` (marked ``*``).

    python benchmarks/planning_cost.py                                  # the demo's models, 800 x 10, CPU
    python benchmarks/planning_cost.py --samples 64 --iterations 2 --dtype fp32 bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from vjepa2.config import ac_predictor_config, encoder_config
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.plan import CEM_PAPER, CEMConfig, WorldModel, plan


def build(args: argparse.Namespace, dtype: str) -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config(args.encoder)).to(args.device)
    e = encoder.cfg
    pred_cfg = ac_predictor_config(args.predictor, embed_dim=e.embed_dim, patch_size=e.patch_size, img_size=e.img_size)
    predictor = ACPredictor(pred_cfg).to(args.device)
    return WorldModel(encoder, predictor, dtype=dtype)


def one_at_a_time(wm: WorldModel, z0: torch.Tensor, s0: torch.Tensor, goal: torch.Tensor):
    def fn(actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([wm.energy(wm.rollout(z0, s0, a[None]), goal).cpu() for a in actions])

    return fn


def seconds_per_action(wm: WorldModel, cfg: CEMConfig, sequential: bool, repeats: int) -> float:
    size = wm.predictor.cfg.img_size
    frames = torch.randn(2, 3, size, size, device=wm.device)
    goal = wm.encode(frames[1:])[0, 0]
    s0 = torch.zeros(1, 1, 7)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        z0 = wm.encode(frames[:1])
        energy_fn = one_at_a_time(wm, z0, s0, goal) if sequential else wm.energy_fn(z0, s0, goal)
        plan(energy_fn, cfg)
        if wm.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="vit_tiny_p8", help="encoder preset (vit_tiny_p8: the demo's)")
    parser.add_argument("--predictor", default="ac_vit_tiny")
    parser.add_argument("--samples", type=int, default=800)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--dtype", nargs="+", default=["bf16", "fp32"])
    parser.add_argument("--sequential-iterations", type=int, default=1, help="0 skips the one-at-a-time mode")
    parser.add_argument("--repeats", type=int, default=2, help="best of N (after one warm-up action)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = dataclasses.replace(
        CEM_PAPER, samples=args.samples, iterations=args.iterations, topk=args.topk, horizon=args.horizon
    )
    print(f"{args.encoder} + {args.predictor} on {args.device} ({torch.get_num_threads()} threads), CEM {cfg.samples}")
    print(f"samples x {cfg.iterations} iterations, top-{cfg.topk}, horizon {cfg.horizon}\n")
    print("| dtype | mode | s / action | rollouts / s |")
    print("|---|---|---|---|")
    for dtype in args.dtype:
        wm = build(args, dtype)
        seconds_per_action(wm, dataclasses.replace(cfg, iterations=1), sequential=False, repeats=1)  # warm-up
        batched = seconds_per_action(wm, cfg, sequential=False, repeats=args.repeats)
        rate = cfg.samples * cfg.iterations / batched
        print(f"| {dtype} | batched ({cfg.samples} per call) | {batched:.2f} | {rate:.0f} |", flush=True)
        if args.sequential_iterations:
            part = dataclasses.replace(cfg, iterations=args.sequential_iterations)
            seq = seconds_per_action(wm, part, sequential=True, repeats=1) * cfg.iterations / part.iterations
            star = "*" if part.iterations < cfg.iterations else ""
            rate = cfg.samples * cfg.iterations / seq
            print(f"| {dtype} | one at a time | {seq:.1f}{star} ({seq / batched:.0f}x) | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
