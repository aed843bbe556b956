"""Checkpoints in a run folder: the previous one kept, debris of killed saves removed, where a resume starts.

Files are written and read by :mod:`vjepa2.weights.files` (atomic, CRC-verified). Before ``latest.pt`` is replaced,
the old one is kept as ``previous.pt`` (a hard link, so no copy), which is where a resume falls back to when
``latest.pt`` turns out damaged. RNG states (torch, numpy, python) are stored as tensors and plain containers for
``weights_only``.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa2.weights.files import CheckpointError, load_checkpoint

_log = logging.getLogger(__name__)


def keep_previous(path: str | Path) -> None:
    """Before ``path`` is replaced: make ``previous.pt`` (beside it) the current file, atomically, without a copy."""
    path = Path(path)
    if not path.exists():
        return
    link = path.with_name(f".previous.{os.getpid()}.tmp")
    link.unlink(missing_ok=True)
    os.link(path, link)
    os.replace(link, path.with_name("previous.pt"))


def clean_temporary(folder: str | Path) -> list[Path]:
    """Delete the temporary files that runs killed during a save left in ``folder``; returns them."""
    removed = sorted(Path(folder).glob(".*.tmp"))  # only this package writes hidden .tmp files in a run folder
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def resume_candidates(folder: str | Path) -> list[Path]:
    """``latest.pt``, ``previous.pt``, then the kept ``step_{k}.pt`` newest first: where a resume may start."""
    folder = Path(folder)
    steps = sorted(folder.glob("step_*.pt"), key=lambda p: int(p.stem[5:]) if p.stem[5:].isdigit() else -1)
    return [p for p in (folder / "latest.pt", folder / "previous.pt", *reversed(steps)) if p.is_file()]


def load_resume(folder: str | Path) -> tuple[Path, dict] | None:
    """The newest undamaged checkpoint of a run folder (saying which damaged ones it skipped), or ``None``.

    Raises:
        CheckpointError: every checkpoint in the folder is damaged.
    """
    candidates = resume_candidates(folder)
    errors = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as err:
            errors.append(str(err))
            _log.warning(f"{err}; trying the previous checkpoint")
            continue
        if errors:
            _log.warning(f"resuming from the older checkpoint {path} (step {ckpt.get('step')})")
        return path, ckpt
    if errors:
        raise CheckpointError("no usable checkpoint in " + f"{folder}: " + "; ".join(errors))
    return None


def non_finite(tensors: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf."""
    return [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def rng_state() -> dict[str, Any]:
    """The process's torch, numpy and python RNG states in a ``weights_only``-safe form."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    *internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
