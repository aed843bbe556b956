"""Planning energies: how far predicted frame features are from the goal's.

The official energy is the mean L1 distance over all tokens and channels (:func:`l1_energy`). It is flat for a small
object: once the predicted and the goal object do not overlap, moving the prediction anywhere else changes the same
few tokens by the same amount, so the planner has no gradient towards the goal (Two-Rooms' 3-pixel dot). The
*smoothed* energy (not official) first blurs each channel of the token grid with a Gaussian, which spreads an
object's features over its neighbourhood: the L1 distance between two blurred maps then grows with the distance
between the objects, up to a few ``sigma``. With ``blur=0`` it is exactly :func:`l1_energy`. It helps raw pixels but
not ViT tokens; the shipped Two-Rooms recipe blurs the frames *before* the encoder instead (``resize+blur=S``
transforms, :func:`~vjepa2.data.transforms.gaussian_blur`) and keeps the official energy.
"""

from __future__ import annotations

import math

import torch

from vjepa2.data.transforms import gaussian_blur


def l1_energy(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Mean L1 over tokens and channels (official): ``pred [S, N, D]``, ``goal [N, D]`` (or reshapable) -> ``[S]``."""
    goal = goal.reshape(pred.shape[-2:]).to(pred)
    return (pred - goal).abs().mean(dim=(-2, -1))


def blur_tokens(tokens: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-blur a square token grid channel by channel: ``[S, g*g, D] -> [S, g*g, D]``.

    ``sigma`` is in tokens. The kernel is renormalised at the borders (a blurred constant map stays constant).
    """
    S, N, D = tokens.shape
    g = math.isqrt(N)
    if g * g != N:
        raise ValueError(f"blur_tokens needs a square token grid, got {N} tokens")
    grid = tokens.transpose(1, 2).reshape(S, D, g, g)
    return gaussian_blur(grid, sigma).reshape(S, D, N).transpose(1, 2)


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
