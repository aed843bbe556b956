"""``vjepa2 train-ac --config FILE [key=value ...]`` (also under ``torchrun``); ``--show-config`` prints the keys."""

from __future__ import annotations

import argparse

from vjepa2.commands.common import add_config_args, run_training
from vjepa2.train.ac_config import ACTrainConfig


def add_args(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from vjepa2.train.ac import train_ac

    return run_training(ACTrainConfig, train_ac, args)
