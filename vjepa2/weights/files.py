"""Torch checkpoint files: written atomically, loaded only after their zip CRCs check, ``weights_only=True``.

A file is written to a temporary file in the same folder, flushed and fsynced, then renamed over the target, so
a process killed at any moment leaves either the previous or the new file, never a torn one. Every load checks
the zip CRCs that ``torch.save`` records (``torch.load`` does not), so flipped bytes are reported with the file's
name instead of loading garbage.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from vjepa2.errors import UserError
from vjepa2.outputs import umask_mode


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message names the file."""


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename), with the umask's permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def verify_checkpoint(path: str | Path) -> None:
    """Check every member's CRC-32 in the zip archive ``torch.save`` writes; raise :class:`CheckpointError`."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointError(f"{path}: damaged checkpoint (not a complete torch archive: {err})") from err
    if bad is not None:
        raise CheckpointError(f"{path}: damaged checkpoint (CRC mismatch in {bad!r}); the file was altered on disk")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Verify, then load a training checkpoint with ``weights_only=True``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    verify_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable vjepa2 checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    return ckpt
