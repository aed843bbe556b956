"""The one device-selection rule of every command and library: ``auto`` means CUDA when available, else CPU."""

from __future__ import annotations

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
