"""Planning energies: the official mean L1, and the smoothed L1 that tracks how far a small object is from the goal."""

import pytest
import torch

from vjepa2.plan.energy import blur_tokens, l1_energy, smoothed_l1_energy


def dot_map(row: int, col: int, grid: int = 8, dim: int = 4) -> torch.Tensor:
    """Token features ``[grid * grid, dim]``: zeros with a one-token object at ``(row, col)``."""
    x = torch.zeros(grid, grid, dim)
    x[row, col] = torch.arange(1.0, dim + 1)
    return x.flatten(0, 1)


def test_l1_energy_is_the_mean_abs_difference_and_blur_0_is_l1():
    pred, goal = torch.randn(5, 16, 3), torch.randn(16, 3)
    expected = (pred - goal).abs().mean(dim=(1, 2))
    torch.testing.assert_close(l1_energy(pred, goal), expected)
    torch.testing.assert_close(l1_energy(pred, goal[None, None]), expected)  # any leading singleton dims
    torch.testing.assert_close(smoothed_l1_energy(pred, goal, blur=0.0), expected)


def test_blur_keeps_constant_maps_and_the_mean_of_interior_objects():
    const = torch.full((2, 36, 3), 0.7)
    torch.testing.assert_close(blur_tokens(const, sigma=1.5), const)  # border renormalisation
    dot = dot_map(4, 4, grid=9)[None]
    blurred = blur_tokens(dot, sigma=0.8)
    assert blurred[0, 4 * 9 + 4, 0] < dot[0, 4 * 9 + 4, 0]  # spread out ...
    torch.testing.assert_close(blurred.sum(1), dot.sum(1), atol=1e-3, rtol=1e-3)  # ... and conserved away from borders


def test_smoothed_energy_grows_with_the_distance_where_l1_is_flat():
    goal = dot_map(8, 3, grid=16)  # sigma 1.6 tokens at blur 0.1; objects kept 3 sigma from the borders
    preds = torch.stack([dot_map(8, c, grid=16) for c in range(4, 11)])  # 1..7 tokens away from the goal
    flat = l1_energy(preds, goal)
    torch.testing.assert_close(flat, flat[:1].expand(7))  # official L1: the same wherever the object is
    smooth = smoothed_l1_energy(preds, goal, blur=0.1)
    assert (smooth.diff() > 0).all(), smooth
    assert smoothed_l1_energy(goal[None], goal, blur=0.1).item() == 0.0


def test_blur_needs_a_square_grid():
    with pytest.raises(ValueError, match="square token grid, got 12 tokens"):
        blur_tokens(torch.zeros(1, 12, 2), sigma=1.0)
