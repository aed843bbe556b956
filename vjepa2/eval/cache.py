"""The probe feature cache: features computed once per (settings, weights, data) key and kept on disk.

Also resolves what a user may pass as encoder weights: an official ``.pt``, a Hugging Face folder, or the folder of
a ``vjepa2 pretrain`` run (its ``latest.pt``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vjepa2.errors import UserError
from vjepa2.weights.files import atomic_save


def cached_features(path: str | Path, compute: Callable[[], Any]) -> Any:
    """Load features from ``path`` if present, else ``compute()`` them and save (atomically) for next time."""
    path = Path(path)
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise UserError(f"{path}: unreadable feature cache ({type(err).__name__}: {err}); delete it") from err
    feats = compute()
    atomic_save(feats, path)
    return feats


def cache_key(**parts: Any) -> str:
    """A short stable hash of everything that determines a feature set (settings, weights file, data source)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_weights(weights: str | Path | None) -> Path | None:
    """``weights`` as a loadable path: a ``vjepa2 pretrain`` run folder becomes its ``latest.pt``."""
    if weights is None:
        return None
    path = Path(weights)
    if path.is_dir() and not (path / "config.json").exists() and (path / "latest.pt").exists():
        return path / "latest.pt"
    return path


def weights_id(weights: Path | None) -> str:
    """Identity of a weights file for cache keys: path, size and modification time (``"random"`` for None)."""
    if weights is None:
        return "random"
    stat = weights.stat()
    return f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
