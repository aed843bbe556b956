"""The one device-selection rule of every command and library: ``auto`` means CUDA when available, else CPU."""

from __future__ import annotations

import contextlib
import ctypes
import functools
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


# glibc mallopt parameters (malloc.h) and the values keep_freed_memory sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_BYTES, _MMAP_BYTES = 1 << 30, 32 << 20  # 32 MiB: the ceiling of glibc's own adaptive threshold


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory in the process instead of returning it to the kernel (once per process).

    Every fresh page costs a page fault when first written. By default glibc gives blocks above a (dynamic) threshold
    back to the kernel when freed, so a loop that allocates and frees the same few MiB-sized activations faults in
    fresh pages on every pass: ~35,000 faults per CEM iteration of 800 rollouts here, ~8% of a planned action. This
    sets ``M_MMAP_THRESHOLD`` to 32 MiB and ``M_TRIM_THRESHOLD`` to 1 GiB (``mallopt``): the process keeps up to
    1 GiB of freed memory for reuse. Process-wide; called by the CPU rollouts of planning. Returns False where there
    is no glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES))
