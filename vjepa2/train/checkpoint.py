"""Atomic training checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced, then renamed over the
target, so a run killed at any moment leaves either the previous or the new file, never a torn one.
RNG states (torch, numpy, python) are stored as tensors and plain containers so that ``weights_only`` accepts them.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``; errors name the file."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: not a readable vjepa2 checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    return ckpt


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
