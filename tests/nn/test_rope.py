import math

import pytest
import torch
from transformers.models.vjepa2.modeling_vjepa2 import rotate_queries_or_keys

from vjepa2.nn.rope import RoPE3D, apply_rope, grid_positions


def _rotate(x: torch.Tensor, layout: str, t: float) -> torch.Tensor:
    """Rotate vectors of head_dim 24 (bands of 8) at position (t, 0, 0)."""
    rope = RoPE3D(24, layout)
    pos = torch.tensor([t])
    cos, sin = rope(pos, torch.zeros(1), torch.zeros(1))
    return apply_rope(x, (cos, sin))


def test_official_tiled_test_vector():
    """The D = 8 test vector of the spec: e0 -> (cos t0, sin t1), e1 -> (-sin t0, cos t1) at position 1."""
    eye = torch.eye(24)
    out = _rotate(eye[:2], "tiled", 1.0)
    theta0, theta1 = 1.0, 10000 ** (-1 / 4)
    expected0 = [math.cos(theta0), math.sin(theta1)]
    expected1 = [-math.sin(theta0), math.cos(theta1)]
    torch.testing.assert_close(out[0, :2], torch.tensor(expected0), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1, :2], torch.tensor(expected1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, :2], torch.tensor([0.5403, 0.0998]), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1, :2], torch.tensor([-0.8415, 0.9950]), atol=1e-4, rtol=0)
    assert torch.count_nonzero(out[:, 2:]) == 0


def test_tiled_is_not_norm_preserving_but_interleaved_is():
    x = torch.randn(16, 24)
    tiled, inter = _rotate(x, "tiled", 3.0), _rotate(x, "interleaved", 3.0)
    torch.testing.assert_close(inter.norm(dim=-1), x.norm(dim=-1))
    assert (tiled.norm(dim=-1) - x.norm(dim=-1)).abs().max() > 1e-2
    assert (tiled - inter).abs().max() > 1e-2


@pytest.mark.parametrize("head_dim", [32, 64, 80])
def test_tiled_matches_transformers_rotation(head_dim):
    """Our full-width tables reproduce transformers' per-band rotate_queries_or_keys (an independent port)."""
    rope = RoPE3D(head_dim, "tiled")
    d = rope.band
    ids = torch.randperm(4 * 5 * 6)[:40]
    t, h, w = grid_positions(ids, (5, 6))
    x = torch.randn(2, 3, 40, head_dim)
    ours = apply_rope(x, rope(t, h, w))
    ref = torch.cat(
        [
            rotate_queries_or_keys(x[..., :d], t),
            rotate_queries_or_keys(x[..., d : 2 * d], h),
            rotate_queries_or_keys(x[..., 2 * d : 3 * d], w),
            x[..., 3 * d :],
        ],
        dim=-1,
    )
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("head_dim", "band"), [(64, 20), (80, 26), (32, 10), (88, 28)])
def test_band_split(head_dim, band):
    assert RoPE3D(head_dim).band == band


def test_time_only_tables_leave_spatial_bands_unrotated():
    rope = RoPE3D(64)
    cos, sin = rope(torch.tensor([0, 1, 2]))
    assert torch.all(cos[:, 20:] == 1) and torch.all(sin[:, 20:] == 0)
    assert torch.any(sin[1:, :20] != 0)


def test_grid_positions_non_square():
    t, h, w = torch.meshgrid(torch.arange(3), torch.arange(4), torch.arange(7), indexing="ij")
    dt, dh, dw = grid_positions(torch.arange(3 * 4 * 7), (4, 7))
    assert torch.equal(dt, t.flatten()) and torch.equal(dh, h.flatten()) and torch.equal(dw, w.flatten())


def test_bf16_tables_round_like_the_official_code():
    """Angles are computed in the compute dtype: omega_1 for a 20-dim band is 0.3984 in bf16 (0.3981 in fp32)."""
    rope = RoPE3D(64)
    angles = rope._band_angles(torch.tensor([1]), torch.bfloat16)
    assert angles.dtype == torch.bfloat16
    assert angles[0, 1].item() == pytest.approx(0.3984, abs=1e-4)
    assert rope._band_angles(torch.tensor([1]), torch.float32)[0, 1].item() == pytest.approx(0.3981, abs=1e-4)


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="layout"):
        RoPE3D(64, "halfsplit")
