"""Video QA on the synthetic benchmark: encoder + projector + LM against the blind LM, a random encoder and chance.

Trains three runs of ``configs/qa/synthetic-tiny.yaml`` (or ``--config``) that differ in one setting each, then
scores them on the same held-out questions (test seeds) per question type and format:

- ``vjepa2_tiny``: the packaged pretrained encoder (``encoder.init=pretrained``);
- ``random init``: the same pipeline on the encoder's random-init twin (``encoder.init=random``, seed 0);
- ``blind``: the same LM trained on the same questions with no video tokens (``model.video=false``): the text prior;
- ``chance``: a uniform guess among the options (multiple choice) or the type's answers (short answer).

A run folder that already holds a finished run with the same config is evaluated again rather than retrained.

    OMP_NUM_THREADS=1 python benchmarks/video_qa.py --out runs/qa/bench
    OMP_NUM_THREADS=1 python benchmarks/video_qa.py --out runs/qa/bench-spatial model.pooling=spatial
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from pathlib import Path

import torch

from vjepa2.config_io import load_config, to_dict
from vjepa2.qa.evaluate import chance, evaluate_run, table
from vjepa2.qa.qa_config import QAConfig
from vjepa2.qa.run import load_run
from vjepa2.qa.train import train

VARIANTS = {  # trained in this order; the table shows chance, blind, random init, vjepa2_tiny
    "vjepa2_tiny": ["encoder.init=pretrained"],
    "blind": ["model.video=false"],
    "random init": ["encoder.init=random"],
}
COLUMNS = ("blind", "random init", "vjepa2_tiny")


def run_variant(name: str, cfg: QAConfig) -> tuple[float, bool]:
    """Train (or reuse) one variant; returns (training seconds, reused)."""
    out = Path(cfg.out)
    if (out / "checkpoint.pt").exists():
        saved = load_config(QAConfig, out / "config.yaml")
        if to_dict(saved) != to_dict(cfg):
            sys.exit(f"error: {out} holds a run with another config; choose another --out")
        print(f"[{name}] reusing the finished run in {out}", file=sys.stderr)
        return float("nan"), True
    tic = time.monotonic()
    train(cfg)
    return time.monotonic() - tic, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/qa/synthetic-tiny.yaml")
    parser.add_argument("--out", default="runs/qa/bench", help="one run folder per variant inside it")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the benchmark was run on 1)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every variant, e.g. stage2.steps=3000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: unknown variants {unknown}; choose from {list(VARIANTS)}")
    results, seconds, qa = {}, {}, None
    for name in names:
        out = Path(args.out) / name.replace(" ", "-")
        cfg = load_config(QAConfig, args.config, [*args.overrides, *VARIANTS[name], f"out={out}", "threads=0"])
        seconds[name], _ = run_variant(name, cfg)
        tic = time.monotonic()
        results[name], qa = evaluate_run(load_run(out))
        print(
            f"[{name}] trained in {seconds[name]:.0f} s, evaluated in {time.monotonic() - tic:.0f} s: "
            f"{results[name].accuracy():.1f}% overall",
            file=sys.stderr,
        )
    columns = {"chance": chance(qa), **{k: results[k] for k in COLUMNS if k in results}}
    command = "OMP_NUM_THREADS=1 python benchmarks/video_qa.py " + " ".join(sys.argv[1:])
    print(f"\n{datetime.date.today()}, {args.threads} thread(s): `{command}`\n")
    print(table(columns, qa))
    if "vjepa2_tiny" in results and "blind" in results:
        gap = results["vjepa2_tiny"].accuracy() - results["blind"].accuracy()
        print(f"\nvjepa2_tiny - blind: {gap:+.1f} points overall (target: >= +20)")
    print("training seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    summary = {k: v.to_dict() for k, v in columns.items()}
    summary["_meta"] = {"command": command, "date": str(datetime.date.today()), "train_seconds": seconds}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
