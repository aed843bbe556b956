"""The ``vjepa2`` command line (also ``python -m vjepa2``).

Each subcommand is a module of :mod:`vjepa2.commands` with ``add_args(parser)`` and ``run(args) -> exit code``,
listed in :data:`COMMANDS` and imported only when that subcommand runs, so ``vjepa2 --help`` stays fast. Adding a
subcommand is one module and one line in the table, e.g.::

    "pretrain": _command("pretrain", "V-JEPA 2 self-supervised pretraining"),

The libraries below hold no argparse; user errors (:class:`~vjepa2.errors.UserError`) print ``error: ...`` and exit 2,
runs that cannot go on (:class:`~vjepa2.errors.RunError`) exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, ``add_args(parser)`` and ``run(args) -> int`` (callables or "module:function")."""

    help: str
    add_args: Callable[[argparse.ArgumentParser], None] | str
    run: Callable[[argparse.Namespace], int | None] | str


def _resolve(target: Callable | str) -> Callable:
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _command(module: str, help: str) -> Command:
    """The subcommand whose ``add_args`` and ``run`` live in :mod:`vjepa2.commands.<module>`."""
    return Command(help, f"vjepa2.commands.{module}:add_args", f"vjepa2.commands.{module}:run")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- table and entry point

COMMANDS: dict[str, Command] = {
    "demo": _command("demo", "the world model in a box: collect, pretrain, train-ac, plan"),
    "embed": _command("embed", "encode videos and images into V-JEPA 2 features (safetensors)"),
    "collect": _command("collect", "record trajectories from a simulator"),
    "prepare-mix": _command("prepare_mix", "render the general pretraining mix (offline)"),
    "pretrain": _command("pretrain", "V-JEPA 2 self-supervised pretraining"),
    "package-weights": _command("package_weights", "a pretraining checkpoint as packaged bf16 weights"),
    "weights": _command("weights", "list every model by name; convert official files <-> Hugging Face folders"),
    "train-ac": _command("train_ac", "train the V-JEPA 2-AC world model"),
    "plan": _command("plan", "MPC with a world model vs baselines (Franka tabletop)"),
    "eval-plan": _command("eval_plan", "planning on Two-Rooms / Push-T"),
    "energy-landscape": _command("energy_landscape", "world-model energy around a transition"),
    "probe": _command("probe", "attentive, linear and k-NN probes on frozen features"),
    "classify": _command("classify", "top-5 classes of a video with a probe"),
    "curate": _command("curate", "retrieve pool videos matching a target's cluster distribution"),
    "qa": _command("qa", "video QA through a language model: train (align, instruction-tune) and evaluate"),
    "ask": _command("ask", "answer a question about a video with a trained video-QA run"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vjepa2")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s arguments are added (and its module imported)."""
    parser = argparse.ArgumentParser(prog="vjepa2", description="V-JEPA 2: video features, pretraining, planning.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors too")
    parser.add_argument("--version", action="version", version=f"vjepa2 {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name, help=cmd.help, description=cmd.help, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        if name == command:
            _resolve(cmd.add_args)(p)
    return parser


class _Stderr(logging.StreamHandler):
    """A handler writing to the ``sys.stderr`` of the moment (so that redirections and captures see it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _Messages(logging.Formatter):
    """Library messages as plain lines; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname}: {text}"


def show_library_messages(level: int = logging.INFO) -> None:
    """Send the ``vjepa2`` loggers' messages to stderr (the library itself stays quiet: no handler of its own)."""
    logger = logging.getLogger("vjepa2")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(_Messages("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vjepa2 COMMAND ...``; returns the exit code."""
    from vjepa2.errors import RunError, UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    show_library_messages()
    try:
        return int(_resolve(COMMANDS[args.command].run)(args) or 0)
    except (UserError, FileNotFoundError) as err:  # bad input: the message names the file, key or value
        if args.debug:
            raise
        _log(f"error: {err}")
        return 2
    except RunError as err:
        if args.debug:
            raise
        _log(f"error: {type(err).__name__}: {err}")
        return 1
