"""The one device-selection rule of every command and library: ``auto`` means CUDA when available, else CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from vjepa2.errors import UserError


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; other names as :class:`torch.device`.

    Raises:
        UserError: a CUDA device was asked for but CUDA is not available, or the name is not a device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown device {name!r} (auto, cpu, cuda or cuda:N)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {str(name)!r} was asked for but CUDA is not available")
    return dev


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads (``torch.set_num_threads``) and restore the count after.

    For work too small to split: every op split over the cores ends in a barrier, and when another process holds a
    core each barrier waits for its time slice (a 6 ms one-frame encode took 0.7 s on 2 threads beside two jobs).
    """
    saved = torch.get_num_threads()
    if n == saved:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
