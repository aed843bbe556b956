"""The rule for every file a command writes under a name the user gives: never an input, never silently replaced."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from vjepa2.errors import UserError


def check_output(
    path: str | os.PathLike | None, *, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False, flag: str
) -> Path | None:
    """Validate an output path before any work is done.

    Raises:
        UserError: ``path`` is one of ``inputs`` (or lies inside an input folder's files), or exists and
            ``overwrite`` is false; the message names ``flag`` and the file.
    """
    if path is None:
        return None
    out = Path(path)
    resolved = out.resolve()
    for given in inputs:
        src = Path(given).resolve()
        if resolved == src or (src.is_dir() and src in resolved.parents and resolved.exists()):
            raise UserError(f"{flag} {out} is one of the inputs; it would be overwritten. Choose another {flag}")
    if out.exists() and not overwrite:
        raise UserError(f"{flag} {out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise UserError(f"{flag} {out} is a folder; give a file name")
    return out


def umask_mode() -> int:
    """The permissions a new file gets under this process's umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def follow_umask(path: str | os.PathLike) -> None:
    """Give ``path`` the umask's permissions (writers such as safetensors create files 0600)."""
    os.chmod(path, umask_mode())
