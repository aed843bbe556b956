"""Distributed weighted sampling with replacement (official ``src/datasets/utils/weighted_sampler.py``).

Every epoch makes one global draw, with replacement, from ``numpy.random.default_rng(seed + epoch)`` using
the per-sample weights (``w_d / N_d`` for a mixture of datasets); rank ``r`` of ``W`` takes the draws at positions
``r, r + W, r + 2W, ...``. Ranks therefore see disjoint parts of the same draw, and the draw does not depend on the
world size. Unlike the official sampler, the epoch length is configurable and an epoch can resume part-way through
(``start_index``), so a restarted run skips the batches it already trained on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from torch.utils.data import Sampler

from vjepa2.errors import UserError


class DrawKey(NamedTuple):
    """One draw of an epoch: what to load and the identity that seeds its randomness.

    Attributes:
        index: sample index into the dataset.
        epoch: epoch of the draw.
        position: position in the epoch's global draw (unique within an epoch, the same on any world size).
    """

    index: int
    epoch: int
    position: int


def normalized_weights(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-sample weights ``[N]`` -> probabilities ``[N]`` (float64), validated."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size == 0:
        raise UserError("cannot sample from an empty dataset (no sample weights)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise UserError("sample weights must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise UserError("sample weights sum to zero")
    return w / total


class DistributedWeightedSampler(Sampler):
    """Weighted sampler with replacement, sharded by rank, reproducible from ``(seed, epoch)``.

    Args:
        weights: per-sample weights ``[N]`` (need not sum to 1).
        samples_per_epoch: global draws per epoch, before sharding; default ``N``. Rounded up to a multiple of
            ``world_size`` so every rank gets the same count.
        rank: this process's rank.
        world_size: number of processes.
        seed: base seed; epoch ``e`` draws with ``numpy.random.default_rng(seed + e)``.
        yield_keys: yield :class:`DrawKey` tuples instead of plain indices (what :class:`VideoClipDataset` wants,
            so that per-item randomness survives persistent workers).
    """

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray,
        samples_per_epoch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        yield_keys: bool = False,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise UserError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.probs = normalized_weights(weights)
        total = len(self.probs) if samples_per_epoch is None else samples_per_epoch
        if total < 1:
            raise UserError(f"samples_per_epoch must be positive, got {samples_per_epoch}")
        self.num_samples = math.ceil(total / world_size)  # per rank
        self.total_size = self.num_samples * world_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.yield_keys = yield_keys
        self.epoch = 0
        self.start_index = 0

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        """Select the epoch's draw and skip its first ``start_index`` items on this rank.

        To resume after ``k`` finished batches of size ``B``, pass ``start_index = k * B``. The skip applies to this
        epoch only: the next ``set_epoch`` call resets it unless given again.
        """
        if not 0 <= start_index <= self.num_samples:
            raise UserError(f"start_index must be in [0, {self.num_samples}], got {start_index}")
        self.epoch, self.start_index = epoch, start_index

    def global_draw(self, epoch: int | None = None) -> np.ndarray:
        """Sample indices ``[total_size]`` of an epoch's draw, shared by all ranks (default: the current epoch)."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng(self.seed + epoch)
        return rng.choice(len(self.probs), size=self.total_size, replace=True, p=self.probs)

    def __iter__(self) -> Iterator[int] | Iterator[DrawKey]:
        draw = self.global_draw()
        positions = range(self.rank + self.start_index * self.world_size, self.total_size, self.world_size)
        if self.yield_keys:
            return (DrawKey(int(draw[p]), self.epoch, p) for p in positions)
        return (int(draw[p]) for p in positions)

    def __len__(self) -> int:
        return self.num_samples - self.start_index
