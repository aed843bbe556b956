"""The position codes of ``benchmarks/pretrained_model.py --positions`` (a probe that knows where each token is)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pretrained_model.py"


def _sincos_positions():
    spec = importlib.util.spec_from_file_location("pretrained_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sincos_positions


def test_codes_tell_every_token_apart_and_factor_over_time_height_width():
    codes = _sincos_positions()((4, 8, 8), 194)  # 194 = 6 * 32 + 2: two padded dims
    assert codes.shape == (256, 194)
    assert torch.unique(codes, dim=0).shape[0] == 256
    assert torch.all(codes[:, 192:] == 0)
    grid = codes.view(4, 8, 8, 194)
    t, h, w = grid[..., :64], grid[..., 64:128], grid[..., 128:192]
    assert torch.equal(t, t[:, :1, :1].expand_as(t))  # the time part depends on t alone
    assert torch.equal(h, h[:1, :, :1].expand_as(h))
    assert torch.equal(w, w[:1, :1, :].expand_as(w))
    assert not torch.equal(t[0], t[1]) and not torch.equal(h[:, 0], h[:, 1]) and not torch.equal(w[..., 0], w[..., 1])
