"""Seconds per planned action of V-JEPA 2-AC CEM: the reference rollout vs the cached fast path, in one run.

Random weights (the cost does not depend on them). Per action: encode the observation, build the energy function
(the cached path runs the shared context through the predictor here, once per plan), then CEM (encoding the goal is
cached in MPC and not counted). Modes, timed alternately in the same process (best of ``--repeats`` after one
warm-up action each):

- ``reference``: the implementation before the fast path: :meth:`WorldModel.rollout_reference` (the predictor on the
  whole history for all candidates at every step) with the attention dispatch as it was (SDPA for short sequences).
- ``cached``: :class:`~vjepa2.plan.cached_rollout.CachedRollout` (shared context, KV cache over the horizon, shared
  first layer, chunks, worker threads, freed memory kept by malloc) and the grouped short-sequence attention. The
  malloc setting (:func:`~vjepa2.devices.keep_freed_memory`) is process-wide: once the cached mode has run, the
  reference runs with it too.
- ``sequential``: the reference one candidate at a time (``--sequential-iterations`` CEM iterations, extrapolated
  to ``--iterations`` and marked ``*``).

``CPU s`` is the process's CPU time for that action (all threads; spinning OpenMP threads count too): on a shared
machine the cached mode's CPU time over the cores estimates its time on an idle one (its workers share nothing).
``GFLOP/s`` is the reference rollout's FLOPs (from the model dims: embeddings, qkv, projections, MLP, all L x L
attention pairs, output projection) x rollouts / s, for every mode: an *effective* rate (the cached path does fewer
FLOPs for the same result). ``% peak`` divides it by ``--peak`` (805 GFLOP/s bf16 and 211 fp32: this machine's 2
cores). On a shared machine compare the rows of one run, not runs.

    python benchmarks/planning_cost.py                                  # the demo's models, 800 x 10, CPU, bf16
    python benchmarks/planning_cost.py --samples 64 --iterations 2 --dtype fp32 bf16 --horizon 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator

import torch

from vjepa2.config import ACPredictorConfig, ac_predictor_config, encoder_config
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.nn import attention as attention_module
from vjepa2.plan import CEM_PAPER, CEMConfig, WorldModel, plan

PEAK_GFLOPS = {"bf16": 805.0, "fp16": 805.0, "fp32": 211.0}  # this machine's 2 cores (AVX-512 bf16, no AMX)


def build(args: argparse.Namespace, dtype: str) -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config(args.encoder)).to(args.device)
    e = encoder.cfg
    pred_cfg = ac_predictor_config(args.predictor, embed_dim=e.embed_dim, patch_size=e.patch_size, img_size=e.img_size)
    predictor = ACPredictor(pred_cfg).to(args.device)
    return WorldModel(encoder, predictor, dtype=dtype, chunk=args.chunk, workers=args.workers)


def rollout_flops(cfg: ACPredictorConfig, T0: int, H: int) -> float:
    """FLOPs of one candidate's reference rollout (the predictor on ``T0 + h`` frames at step ``h``)."""
    d, hidden, hw, c = cfg.pred_dim, int(cfg.pred_dim * cfg.mlp_ratio), cfg.grid**2, cfg.cond_tokens
    total = 0.0
    for h in range(H):
        T = T0 + h
        L = T * (c + hw)
        total += 2 * T * hw * cfg.embed_dim * d + 2 * T * c * cfg.action_dim * d  # frame, action, state embeddings
        total += cfg.depth * (2 * L * d * (4 * d + 2 * hidden) + 4 * L * L * d)  # qkv, proj, MLP; q.k and p.v
        total += 2 * T * hw * d * cfg.embed_dim  # output projection
    return total


@contextlib.contextmanager
def reference_attention() -> Iterator[None]:
    """The attention dispatch before the grouped short-sequence path: SDPA below the per-head threshold."""
    saved = attention_module.GROUPED_MIN_PAIRS
    attention_module.GROUPED_MIN_PAIRS = math.inf
    try:
        yield
    finally:
        attention_module.GROUPED_MIN_PAIRS = saved


def one_at_a_time(wm: WorldModel, z0: torch.Tensor, s0: torch.Tensor, goal: torch.Tensor):
    def fn(actions: torch.Tensor) -> torch.Tensor:
        return torch.cat([wm.energy(wm.rollout_reference(z0, s0, a[None]), goal).cpu() for a in actions])

    return fn


def action_timer(wm: WorldModel, mode: str) -> Callable[[CEMConfig], tuple[float, float]]:
    """A function timing one planned action of ``mode`` for a CEM config: (wall, process CPU) seconds."""
    size = wm.predictor.cfg.img_size
    frames = torch.randn(2, 3, size, size, device=wm.device)
    goal = wm.encode(frames[1:])[0, 0]
    s0 = torch.zeros(1, 1, 7)

    def run(cfg: CEMConfig) -> tuple[float, float]:
        wm.cached = mode == "cached"
        with contextlib.nullcontext() if mode == "cached" else reference_attention():
            start, cpu = time.perf_counter(), time.process_time()
            z0 = wm.encode(frames[:1])
            energy_fn = one_at_a_time(wm, z0, s0, goal) if mode == "sequential" else wm.energy_fn(z0, s0, goal)
            plan(energy_fn, cfg)
            if wm.device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start, time.process_time() - cpu

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="vit_tiny_p8", help="encoder preset (vit_tiny_p8: the demo's)")
    parser.add_argument("--predictor", default="ac_vit_tiny")
    parser.add_argument("--samples", type=int, default=800)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--dtype", nargs="+", default=["bf16"])
    parser.add_argument("--modes", nargs="+", default=["reference", "cached"], choices=["reference", "cached"])
    parser.add_argument("--sequential-iterations", type=int, default=0, help="> 0 adds the one-at-a-time mode")
    parser.add_argument("--repeats", type=int, default=3, help="best of N per mode, modes alternated")
    parser.add_argument("--chunk", type=int, default=None, help="cached: candidates per chunk (default: auto)")
    parser.add_argument("--workers", type=int, default=None, help="cached: CPU threads (default: torch threads)")
    parser.add_argument("--peak", type=float, default=None, help="peak GFLOP/s (default: this machine's, per dtype)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = dataclasses.replace(
        CEM_PAPER, samples=args.samples, iterations=args.iterations, topk=args.topk, horizon=args.horizon
    )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"{args.encoder} + {args.predictor} on {args.device} ({torch.get_num_threads()} threads, load {load}),")
    print(f"CEM {cfg.samples} samples x {cfg.iterations} iterations, top-{cfg.topk}, horizon {cfg.horizon}\n")
    print("| dtype | mode | s / action | CPU s / action | rollouts / s | speed-up | GFLOP/s (eff.) | % peak |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in args.dtype:
        wm = build(args, dtype)
        flops = rollout_flops(wm.predictor.cfg, 1, cfg.horizon)
        peak = args.peak or PEAK_GFLOPS[dtype]
        timers = {mode: action_timer(wm, mode) for mode in args.modes}
        for timer in timers.values():
            timer(dataclasses.replace(cfg, iterations=1))  # warm-up
        best = {mode: (math.inf, math.inf) for mode in args.modes}  # (wall, CPU) of the fastest action
        for _ in range(args.repeats):
            for mode, timer in timers.items():
                best[mode] = min(best[mode], timer(cfg))
        base = best["reference"][0] if "reference" in best else None
        if args.sequential_iterations:
            part = dataclasses.replace(cfg, iterations=args.sequential_iterations)
            wall, cpu = action_timer(wm, "sequential")(part)
            best["sequential"] = (wall * cfg.iterations / part.iterations, cpu * cfg.iterations / part.iterations)
        for mode, (seconds, cpu) in best.items():
            rate = cfg.samples * cfg.iterations / seconds
            gflops = rate * flops / 1e9
            star = "*" if mode == "sequential" and args.sequential_iterations < cfg.iterations else ""
            ratio = f"{base / seconds:.2f}x" if base else "-"
            print(
                f"| {dtype} | {mode} | {seconds:.2f}{star} | {cpu:.2f} | {rate:.0f} | {ratio} | {gflops:.0f} | "
                f"{100 * gflops / peak:.0f}% |",
                flush=True,
            )
    print(f"\nreference rollout: {flops / 1e6:.1f} MFLOP per candidate")


if __name__ == "__main__":
    main()
