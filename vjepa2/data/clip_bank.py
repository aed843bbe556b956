"""Clip banks: uint8 clips ``[N, frames, size, size, 3]`` in one ``.npy`` file per source (memory-mapped), listed
with their weights in a ``mix.json`` (see :mod:`vjepa2.train.mix`).

:class:`ClipBankDataset` reads a weighted mixture of banks: sample ``i`` of step ``s`` is a pure function of
``(seed, s, i)`` (source by weight, clip, start frame, horizontal flip), so resumed and distributed runs see the
same clips as an uninterrupted single process.

"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vjepa2.errors import UserError

BANK_SUFFIX = ".npy"

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)


def open_bank(path: str | Path) -> np.ndarray:
    """A clip bank, memory-mapped: uint8 ``[N, T, H, W, 3]``; errors name the file."""
    path = Path(path)
    try:
        bank = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable clip bank ({err})") from err
    if bank.dtype != np.uint8 or bank.ndim != 5 or bank.shape[-1] != 3 or bank.shape[0] == 0:
        raise UserError(f"{path}: a clip bank is uint8 [N, T, H, W, 3]; found {bank.dtype} {list(bank.shape)}")
    return bank


def bank_sources(sources: Sequence[str]) -> list[tuple[str, float | None]]:
    """Expand ``mix.json`` files (each bank with its weight) and ``.npy`` banks (weight from the config)."""
    out: list[tuple[str, float | None]] = []
    for source in sources:
        path = Path(source)
        if path.suffix == ".json":
            try:
                manifest = json.loads(path.read_text())
                banks = manifest["banks"].values()
                out += [(str(path.parent / b["file"]), float(b["weight"])) for b in banks]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise UserError(f"{path}: not a readable mix manifest ({err})") from err
        else:
            out.append((str(path), None))
    return out


def is_bank_source(source: str) -> bool:
    return Path(source).suffix in (BANK_SUFFIX, ".json")


class ClipBankDataset:
    """A weighted mixture of clip banks; ``clip(step, i)`` is sample ``i`` of global batch ``step``.

    Args:
        banks: ``.npy`` clip banks. weights: per-bank sampling weights (normalised).
        frames: frames per clip; ``frame_step`` between them (the bank must hold ``(frames - 1) * step + 1``).
        crop: output side; banks of another size are resized (bilinear).
        flip: random horizontal flips.
        seed: the run's seed.
    """

    def __init__(
        self,
        banks: Sequence[str],
        weights: Sequence[float],
        frames: int,
        frame_step: int = 1,
        crop: int = 64,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        if len(banks) != len(weights) or not banks:
            raise UserError(f"{len(banks)} clip banks but {len(weights)} weights")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise UserError(f"bank weights must be >= 0 with a positive sum, got {list(weights)}")
        self.names = [str(b) for b in banks]
        self.banks = [open_bank(b) for b in banks]
        span = (frames - 1) * frame_step + 1
        for name, bank in zip(self.names, self.banks, strict=True):
            if bank.shape[1] < span:
                raise UserError(
                    f"{name}: clips of {bank.shape[1]} frames; {frames} frames at step {frame_step} need {span}"
                )
        self.p = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.frames, self.step, self.crop, self.flip, self.seed = frames, frame_step, crop, flip, seed

    def clip(self, step: int, index: int) -> torch.Tensor:
        """Normalised clip ``[3, frames, crop, crop]``, a function of ``(seed, step, index)``."""
        rng = np.random.default_rng([self.seed, step, index])
        b = int(rng.choice(len(self.banks), p=self.p))
        bank = self.banks[b]
        span = (self.frames - 1) * self.step + 1
        i, t0 = int(rng.integers(bank.shape[0])), int(rng.integers(bank.shape[1] - span + 1))
        x = torch.from_numpy(np.array(bank[i, t0 : t0 + span : self.step]))  # [T, H, W, 3], a copy
        x = x.permute(3, 0, 1, 2).float().div_(255)  # [3, T, H, W]
        if x.shape[-1] != self.crop or x.shape[-2] != self.crop:
            x = torch.nn.functional.interpolate(x, size=(self.crop, self.crop), mode="bilinear", antialias=True)
        if self.flip and rng.random() < 0.5:
            x = x.flip(-1)
        return (x - _MEAN) / _STD

    def batch(self, step: int, indices: Sequence[int]) -> torch.Tensor:
        """Clips ``[len(indices), 3, frames, crop, crop]`` of global batch ``step``."""
        return torch.stack([self.clip(step, i) for i in indices])
