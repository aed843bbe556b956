"""``vjepa2 qa train|eval``: video question answering through a language model.

vjepa2 qa train --config configs/qa/synthetic-tiny.yaml [key=value ...]
vjepa2 qa eval runs/qa/synthetic-tiny [--split test] [--clips N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vjepa2.commands.common import add_config_args, resolve_config


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    tr = sub.add_parser(
        "train",
        help="align a projector (stage 1) and instruction-tune the LM (stage 2) on the synthetic QA set",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_args(tr)
    ev = sub.add_parser(
        "eval",
        help="accuracy of a trained run per question type (multiple choice and short answer) beside chance",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ev.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by vjepa2 qa train")
    ev.add_argument("--split", choices=("train", "val", "test"), default="test", help="which seeds to ask about")
    ev.add_argument("--clips", type=int, help="clips to simulate (default: the run's data.test_clips)")
    ev.add_argument("--batch-size", type=int, default=64)


def _train(args: argparse.Namespace) -> int:

    from vjepa2.qa.qa_config import QAConfig
    from vjepa2.qa.train import train

    cfg = resolve_config(QAConfig, args)
    if cfg is None:
        return 0
    out = train(cfg)
    print(f"trained run in {out} (vjepa2 qa eval {out})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from vjepa2.errors import UserError
    from vjepa2.qa.evaluate import chance, evaluate_run, save_scores, table
    from vjepa2.qa.run import load_run

    if args.clips is not None and args.clips < 1:
        raise UserError(f"--clips must be >= 1, got {args.clips}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    run = load_run(args.run_dir)
    scores, qa = evaluate_run(run, args.split, args.clips, args.batch_size)
    name = Path(args.run_dir).name or "model"
    print(table({"chance": chance(qa), name: scores}, qa))
    out = Path(args.run_dir) / f"eval-{args.split}.json"
    save_scores(out, scores, {"split": args.split, "clips": args.clips or run.cfg.data.test_clips})
    print(f"{scores.accuracy():.1f}% overall; scores in {out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    return _train(args) if args.action == "train" else _eval(args)
