"""``vjepa2 probe --config FILE [key=value ...]``: attentive, linear and k-NN probes on frozen features."""

from __future__ import annotations

import argparse

from vjepa2.commands.common import add_config_args, log, resolve_config


def add_args(p: argparse.ArgumentParser) -> None:

    add_config_args(p)


def run(args: argparse.Namespace) -> int:
    """``vjepa2 probe --config FILE [key=value ...]``: train probes on frozen features and print the table."""
    from vjepa2.data.video import VideoReadError
    from vjepa2.eval.evaluate import ProbeRunConfig, evaluate, format_table

    try:
        cfg = resolve_config(ProbeRunConfig, args)
        if cfg is None:
            return 0
        results = evaluate(cfg)
    except (ValueError, FileNotFoundError, ImportError, VideoReadError) as e:
        log(f"error: {e}")
        return 2
    print(format_table(results))
    print(f"probe, classes, results and config in {cfg.run.out}")
    return 0
