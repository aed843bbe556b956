"""``vjepa2 pretrain --config FILE [key=value ...]`` (also under ``torchrun``); ``--show-config`` prints the keys."""

from __future__ import annotations

import argparse

from vjepa2.commands.common import add_config_args, run_training
from vjepa2.train.pretrain_config import PretrainConfig


def add_args(parser: argparse.ArgumentParser) -> None:
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from vjepa2.train.pretrain import train

    return run_training(PretrainConfig, train, args)
