"""A run folder's bookkeeping: one live run at a time, a resume that checks what changed, no debris.

``open_run`` takes an exclusive lock on ``out/.lock`` for the life of the process (a second run on the same
folder fails at once with the first one's pid), deletes the temporary files of saves that a kill interrupted, and
finds the newest undamaged checkpoint. ``check_resume`` compares the checkpoint's config with the new one: a
different model is refused, other changes (and a different number of processes) are listed old -> new.
``truncate_metrics`` drops the records a resumed run is about to write again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from vjepa2.errors import RunFolderError
from vjepa2.train.checkpoint import clean_temporary

_log = logging.getLogger(__name__)

_LOCKS: dict[str, Any] = {}  # open lock files by folder, held until the process exits or release_run


def lock_run(out: str | Path) -> None:
    """Hold ``out/.lock`` exclusively for this process; :class:`RunFolderError` when a live run holds it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = str(out.resolve())
    if key in _LOCKS:
        return
    f = (out / ".lock").open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        owner = f.read().strip() or "unknown"
        f.close()
        raise RunFolderError(
            f"{out}: another run (pid {owner}) is writing to this folder; use another run.out"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _LOCKS[key] = f


def release_run(out: str | Path) -> None:
    f = _LOCKS.pop(str(Path(out).resolve()), None)
    if f is not None:
        f.close()


def open_run(out: str | Path) -> None:
    """Lock ``out`` and delete the temporary files of interrupted saves (saying how many)."""
    lock_run(out)
    removed = clean_temporary(out)
    if removed:
        _log.info(f"removed {len(removed)} temporary file(s) left by an interrupted save in {out}")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


# Keys that only say how the run is watched or where it stops; changing them on resume is the normal case.
_QUIET = ("run.progress", "run.log_every", "run.max_minutes", "run.tensorboard", "run.checkpoint_every", "run.out")


def check_resume(path: Path, saved: dict[str, Any], new: dict[str, Any], frozen: tuple[str, ...]) -> None:
    """Compare a checkpoint's ``config`` (and ``world_size``) with the new run's.

    Args:
        path: the checkpoint (for messages).
        saved: the checkpoint dict. new: ``to_dict`` of the new config plus ``world_size``.
        frozen: key prefixes that must not change (the model); a change raises :class:`RunFolderError`.
        log: where warnings go.
    """
    old = _flat({**saved.get("config", {}), "world_size": saved.get("world_size", new.get("world_size"))})
    changed = {k: (old.get(k), v) for k, v in _flat(new).items() if k in old and old[k] != v}
    hard = [k for k in changed if k.startswith(frozen)]
    if hard:
        diffs = ", ".join(f"{k}: {changed[k][0]!r} -> {changed[k][1]!r}" for k in hard)
        raise RunFolderError(f"{path}: cannot resume with a different model ({diffs}); use a new run.out")
    soft = [k for k in changed if not k.startswith(_QUIET)]
    if soft:
        diffs = "; ".join(f"{k}: {changed[k][0]!r} -> {changed[k][1]!r}" for k in soft)
        _log.warning(f"resuming {path} with changed settings: {diffs}")


def truncate_metrics(path: str | Path, step: int) -> int:
    """Drop the records of ``metrics.jsonl`` past ``step`` (those a resume repeats); returns how many were dropped."""
    path = Path(path)
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    keep = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    dropped = len([line for line in lines if line.strip()]) - len(keep)
    if dropped:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, path)
    return dropped
