"""Planning energies: how far predicted frame features are from the goal's.

The official energy is the mean L1 distance over all tokens and channels (:func:`l1_energy`). It is flat for a small
object: once the predicted and the goal object do not overlap, moving the prediction anywhere else changes the same
few tokens by the same amount, so the planner has no gradient towards the goal (Two-Rooms' 3-pixel dot). The
*smoothed* energy (not official) first blurs each channel of the token grid with a Gaussian, which spreads an
object's features over its neighbourhood: the L1 distance between two blurred maps then grows with the distance
between the objects, up to a few ``sigma``. With ``blur=0`` it is exactly :func:`l1_energy`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def l1_energy(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Mean L1 over tokens and channels (official): ``pred [S, N, D]``, ``goal [N, D]`` (or reshapable) -> ``[S]``."""
    goal = goal.reshape(pred.shape[-2:]).to(pred)
    return (pred - goal).abs().mean(dim=(-2, -1))


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian ``[2 * ceil(3 sigma) + 1]``."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur_tokens(tokens: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-blur a square token grid channel by channel: ``[S, g*g, D] -> [S, g*g, D]``.

    ``sigma`` is in tokens. The kernel is renormalised at the borders (a blurred constant map stays constant).
    """
    S, N, D = tokens.shape
    g = math.isqrt(N)
    if g * g != N:
        raise ValueError(f"blur_tokens needs a square token grid, got {N} tokens")
    k = gaussian_kernel(sigma).to(tokens)
    pad = len(k) // 2
    x = tokens.transpose(1, 2).reshape(S * D, 1, g, g)
    ones = torch.ones(1, 1, g, g, dtype=x.dtype, device=x.device)
    kh, kw = k.view(1, 1, -1, 1), k.view(1, 1, 1, -1)

    def smooth(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh, padding=(pad, 0)), kw, padding=(0, pad))

    x = smooth(x) / smooth(ones)
    return x.reshape(S, D, N).transpose(1, 2)


def smoothed_l1_energy(pred: torch.Tensor, goal: torch.Tensor, blur: float) -> torch.Tensor:
    """:func:`l1_energy` of Gaussian-blurred token grids; ``blur`` is sigma as a fraction of the grid's width.

    ``pred [S, g*g, D]``, ``goal [g*g, D]`` -> ``[S]``. ``blur=0`` is :func:`l1_energy`.
    """
    if blur <= 0:
        return l1_energy(pred, goal)
    g = math.isqrt(pred.shape[-2])
    sigma = blur * g
    goal = goal.reshape(1, *pred.shape[-2:]).to(pred)
    return l1_energy(blur_tokens(pred, sigma), blur_tokens(goal, sigma)[0])
