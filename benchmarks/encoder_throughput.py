"""Encoder throughput: our ``VisionTransformer`` vs ``transformers.VJEPA2Model`` with the same weights.

Runs ViT-L on one 16x256x256 clip in fp32 and under bf16 autocast (``torch.inference_mode``), warm-up then the
median of ``--runs`` timed forwards per model (ours and transformers alternate so both see the same machine load).
Prints seconds, the speed-up, achieved GFLOP/s (analytic FLOP count) and the fraction of the matmul peak measured
in the same run, plus the max abs difference of the two outputs. Then ViT-g on a 64x256x256 clip with bf16 weights
in a fresh subprocess: forward time and peak resident memory.

    python benchmarks/encoder_throughput.py            # full run (~10 min on 2 cores)
    python benchmarks/encoder_throughput.py --quick    # smoke run on small sizes (~1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

try:
    import vjepa2  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vjepa2.config import EncoderConfig, encoder_config  # noqa: E402
from vjepa2.models import VisionTransformer  # noqa: E402
from vjepa2.weights import ours_to_hf  # noqa: E402

FP32_TOL = 1e-4


def encoder_flops(cfg: EncoderConfig, T: int, H: int, W: int, batch: int = 1) -> float:
    """Multiply-add FLOPs (x2) of one encoder forward on ``batch`` clips ``T x H x W``.

    Patch embedding (a matmul of ``C*t*p*p -> D`` per token), per block the four Linears
    (``qkv``, ``proj``, ``fc1``, ``fc2``: ``2*N*(4*D^2 + 2*D*hidden)``, i.e. ``2*N*12*D^2`` at MLP ratio 4) and
    attention (``QK^T`` and ``PV``: ``4*N^2*D``). Norms, GELU, softmax and RoPE are not counted.
    """
    t, p, D = cfg.tubelet_size, cfg.patch_size, cfg.embed_dim
    n = max(T // t, 1) * (H // p) * (W // p)
    hidden = int(D * cfg.mlp_ratio)
    patch = 2 * n * D * cfg.in_chans * t * p * p
    linears = 2 * n * (4 * D * D + 2 * D * hidden)
    attention = 4 * n * n * D
    return float(batch * (patch + cfg.depth * (linears + attention)))


def _busy_seconds() -> float:
    """CPU-seconds all processes have been busy since boot (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def foreign_load(fn: Callable[[], object]) -> tuple[float, float]:
    """``(seconds, load)`` of one call, ``load`` the fraction of all CPUs other processes used meanwhile."""
    busy, cpu, start = _busy_seconds(), time.process_time(), time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    others = (_busy_seconds() - busy) - (time.process_time() - cpu)
    return seconds, max(0.0, others / (seconds * (os.cpu_count() or 1)))


def wait_for_quiet(threshold: float = 0.05, max_wait: float = 120.0) -> None:
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` of the CPUs."""
    start = time.time()
    while foreign_load(lambda: time.sleep(0.3))[1] > threshold and time.time() - start < max_wait:
        pass


def timed(fn: Callable[[], object], max_load: float = 0.05, tries: int = 10) -> float:
    """Seconds of one call of ``fn``, repeated (up to ``tries``) while other processes loaded the CPUs more than
    ``max_load`` during it: the machine is shared, and a run that competed for its 2 cores is not a measurement."""
    for _ in range(tries):
        wait_for_quiet()
        seconds, load = foreign_load(fn)
        if load <= max_load:
            return seconds
    print(f"  (warning: other processes kept {100 * load:.0f}% of the CPUs busy; timing is pessimistic)")
    return seconds


def matmul_peak(dtype: torch.dtype, n: int = 4096, runs: int = 5) -> float:
    """GFLOP/s of an ``n x n`` matmul in ``dtype`` (median of ``runs`` after one warm-up)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    times = [timed(lambda: torch.mm(a, b)) for _ in range(runs)]
    return 2 * n**3 / statistics.median(times) / 1e9


def build_pair(cfg: EncoderConfig, frames: int, size: int) -> tuple[VisionTransformer, torch.nn.Module]:
    """Our encoder (random init) and a ``transformers.VJEPA2Model`` (sdpa) holding the same encoder weights."""
    import transformers

    ours = VisionTransformer(cfg).eval()
    with torch.no_grad():  # non-trivial biases and norm affines, so the output comparison means something
        for name, p in ours.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif "norm" in name:
                p.normal_(1.0, 0.1)
    hf_cfg = transformers.VJEPA2Config(
        hidden_size=cfg.embed_dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        patch_size=cfg.patch_size,
        tubelet_size=cfg.tubelet_size,
        in_chans=cfg.in_chans,
        crop_size=size,  # HF takes RoPE positions from the config grid
        frames_per_clip=frames,
        qkv_bias=cfg.qkv_bias,
        layer_norm_eps=cfg.norm_eps,
        # the predictor is skipped; keep it tiny
        pred_hidden_size=64,
        pred_num_attention_heads=2,
        pred_num_hidden_layers=1,
        attn_implementation="sdpa",
    )
    hf = transformers.VJEPA2Model(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(ours_to_hf({"encoder": ours.state_dict()}), strict=False)
    missing = [k for k in missing if k.startswith("encoder.")]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping failed: missing {missing}, unexpected {unexpected}")
    assert hf.config._attn_implementation == "sdpa", hf.config._attn_implementation
    return ours, hf


@dataclass
class Row:
    variant: str
    ours_s: float
    hf_s: float
    flops: float
    peak: float
    max_diff: float
    ours_runs: list[float]
    hf_runs: list[float]

    @property
    def speedup(self) -> float:
        return self.hf_s / self.ours_s


def compare(
    ours: torch.nn.Module, hf: torch.nn.Module, video: torch.Tensor, bf16: bool, runs: int
) -> tuple[list[float], list[float], torch.Tensor, torch.Tensor]:
    """Per-run seconds of ours and HF (alternating, after one warm-up each) and both outputs (fp32)."""
    hf_video = video.transpose(1, 2)  # HF wants [B, T, C, H, W]
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    def run_ours() -> torch.Tensor:
        with torch.inference_mode(), ctx:
            return ours(video)

    def run_hf() -> torch.Tensor:
        with torch.inference_mode(), ctx:
            return hf(pixel_values_videos=hf_video, skip_predictor=True).last_hidden_state

    a, b = run_ours().float(), run_hf().float()  # warm-up
    t_ours, t_hf = [], []
    for _ in range(runs):
        t_ours.append(timed(run_ours))
        t_hf.append(timed(run_hf))
    return t_ours, t_hf, a, b


def fmt_table(rows: list[Row]) -> str:
    head = (
        "| variant | ours s | transformers s | speed-up | ours GFLOP/s | ours % of peak "
        "| transformers GFLOP/s | transformers % of peak | max abs diff |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        go, gh = r.flops / r.ours_s / 1e9, r.flops / r.hf_s / 1e9
        lines.append(
            f"| {r.variant} | {r.ours_s:.2f} | {r.hf_s:.2f} | {r.speedup:.2f}x | {go:.0f} | {100 * go / r.peak:.0f}% "
            f"| {gh:.0f} | {100 * gh / r.peak:.0f}% | {r.max_diff:.1e} |"
        )
    return "\n".join(lines)


def vm_hwm_mb() -> float | None:
    """Peak resident set (VmHWM) of this process in MiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_hwm() -> bool:
    """Reset this process's peak-RSS mark (Linux ``clear_refs`` 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(preset: str, frames: int, size: int) -> None:
    """(Subprocess) build ``preset`` directly in bf16, run one bf16 forward, print a JSON line of time and memory."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # parameters are created in bf16: no fp32 copy ever exists
    try:
        model = VisionTransformer(encoder_config(preset)).eval()
    finally:
        torch.set_default_dtype(default)
    video = torch.randn(1, 3, frames, size, size, dtype=torch.bfloat16)
    rss_model = vm_hwm_mb()
    outs: list[torch.Tensor] = []
    hwm_reset = reset_hwm()
    wait_for_quiet()
    with torch.inference_mode():
        seconds, load = foreign_load(lambda: outs.append(model(video)))
    out = outs[0]
    result = {
        "preset": preset,
        "clip": f"{frames}x{size}x{size}",
        "tokens": out.shape[1],
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "seconds": seconds,
        "other_load": load,
        "peak_rss_after_build_mib": rss_model,
        # VmHWM after a reset covers model + forward only; otherwise (and ru_maxrss, which also counts the
        # parent's pages at fork) it would include start-up peaks
        "peak_rss_forward_mib": vm_hwm_mb() if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "flops": encoder_flops(encoder_config(preset), frames, size, size),
    }
    print("RESULT " + json.dumps(result))


def run_memory(preset: str, frames: int, size: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", preset, str(frames), str(size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"memory subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: ViT-B on 8x128x128, 2 runs, small giant")
    parser.add_argument("--skip-giant", action="store_true", help="skip the ViT-g 64-frame memory/time run")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per model and variant (default 5)")
    parser.add_argument("--preset", default=None, help="encoder preset to compare (default vit_large)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--variants", default="fp32,bf16", help="comma list of fp32, bf16")
    parser.add_argument("--memory-child", nargs=3, metavar=("PRESET", "FRAMES", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        preset, frames, size = args.memory_child
        memory_child(preset, int(frames), int(size))
        return

    quick = args.quick
    preset = args.preset or ("vit_base" if quick else "vit_large")
    frames = args.frames or (8 if quick else 16)
    size = args.size or (128 if quick else 256)
    runs = args.runs or (2 if quick else 5)
    cfg = encoder_config(preset)
    torch.manual_seed(0)

    cap = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu capability {cap}")
    peaks = {"fp32": matmul_peak(torch.float32, runs=3), "bf16": matmul_peak(torch.bfloat16, runs=3)}
    print(f"matmul 4096^2 peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")

    ours, hf = build_pair(cfg, frames, size)
    video = torch.randn(1, cfg.in_chans, frames, size, size)
    flops = encoder_flops(cfg, frames, size, size)
    print(f"{preset}, clip {frames}x{size}x{size}: {flops / 1e9:.0f} GFLOP per forward")

    rows, notes, ref = [], [], None
    for variant in args.variants.split(","):
        bf16 = variant == "bf16"
        t_ours, t_hf, out_ours, out_hf = compare(ours, hf, video, bf16, runs)
        diff = (out_ours - out_hf).abs().max().item()
        name = "bf16 autocast" if bf16 else "fp32"
        row = Row(name, statistics.median(t_ours), statistics.median(t_hf), flops, peaks[variant], diff, t_ours, t_hf)
        rows.append(row)
        print(f"  {name}: ours {[round(t, 2) for t in t_ours]}  transformers {[round(t, 2) for t in t_hf]}")
        if not bf16:
            if diff > FP32_TOL:
                raise AssertionError(f"fp32 outputs differ by {diff:.2e} > {FP32_TOL}")
            ref = out_ours
        elif ref is not None:
            e_ours, e_hf = ((o - ref).abs().max().item() for o in (out_ours, out_hf))
            notes.append(f"bf16 error vs the fp32 output (max abs): ours {e_ours:.1e}, transformers {e_hf:.1e}")
    print()
    print(fmt_table(rows))
    print("\n".join(notes))
    del ours, hf

    if not args.skip_giant:
        g_preset, g_frames, g_size = ("vit_base", 16, 128) if quick else ("vit_giant", 64, 256)
        res = run_memory(g_preset, g_frames, g_size)
        gflops = res["flops"] / res["seconds"] / 1e9
        print()
        print(
            f"{res['preset']} ({res['params_m']:.0f}M params, built in bf16), one {res['clip']} clip "
            f"({res['tokens']} tokens), bf16 inference, 1 run (no warm-up): {res['seconds']:.1f} s, "
            f"{res['flops'] / 1e12:.1f} TFLOP, {gflops:.0f} GFLOP/s "
            f"({100 * gflops / peaks['bf16']:.0f}% of bf16 peak); "
            f"peak RSS {res['peak_rss_forward_mib'] / 1024:.2f} GiB "
            f"(model built: {res['peak_rss_after_build_mib'] / 1024:.2f} GiB; other processes used "
            f"{100 * res['other_load']:.0f}% of the CPUs meanwhile)"
        )


if __name__ == "__main__":
    main()
