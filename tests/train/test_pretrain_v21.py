"""The V-JEPA 2.1 training switches: dense context loss, distance weights, lambda ramp, deep supervision, images."""

from dataclasses import replace

import pytest
import torch

from tests.train.test_pretrain import clips, losses, tiny_config
from vjepa2.errors import ConfigError
from vjepa2.train.dense import V21Section, context_weight, distance_weights, level_norm, weighted_l1
from vjepa2.train.pretrain import build_models, train
from vjepa2.train.pretrain_config import ModelSection


def test_lambda_ramp_and_constant_cooldown():
    v = V21Section(context_loss=0.5, context_ramp=(10, 20))
    assert [context_weight(v, s) for s in (0, 9, 10, 15, 20, 99)] == [0, 0, 0, 0.25, 0.5, 0.5]
    assert context_weight(V21Section(context_loss=0.5, context_ramp=(0, 0)), 0) == 0.5
    assert context_weight(V21Section(), 100_000) == 0.0


def test_distance_weights_follow_the_nearest_target():
    grid = (2, 4, 4)
    ctx, tgt = torch.tensor([[0, 3, 16]]), torch.tensor([[1, 31]])  # (0,0,0) (0,0,3) (1,0,0); targets (0,0,1) (1,3,3)
    w = distance_weights(ctx, tgt, grid)
    assert w.tolist()[0] == pytest.approx([1.0, 1 / 2**0.5, 1 / 2**0.25])  # d = 1, 2, sqrt(2)
    pred, target = torch.ones(1, 3, 2), torch.zeros(1, 3, 2)
    assert weighted_l1(pred, target, w).item() == pytest.approx(w.mean().item())  # mean(|e| * w), not renormalised


def test_level_norm_normalises_each_level_alone():
    h = torch.cat([torch.randn(2, 5, 4) * 10 + 3, torch.randn(2, 5, 4)], dim=-1)
    out = level_norm(h, 2)
    torch.testing.assert_close(out[..., :4].mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., 4:].std(-1, unbiased=False), torch.ones(2, 5), atol=1e-3, rtol=0)


def _v21_config(tmp_path, steps=4, **v21):
    cfg = tiny_config(tmp_path, steps=steps, dtype="fp32")
    return replace(cfg, model=ModelSection(encoder="vjepa2_1_vit_test", predictor="vjepa2_1_vit_test"),
                   v21=V21Section(**v21))  # fmt: skip


def test_deep_supervision_builds_a_four_level_predictor_with_context(tmp_path):
    enc, pred, _ = build_models(_v21_config(tmp_path, deep_supervision=True, context_loss=0.5))
    assert pred.cfg.levels == 4 and pred.cfg.out_dim == 4 * 48 and pred.cfg.return_context
    assert enc.cfg.rope_layout == "interleaved" and pred.cfg.rope_layout == "interleaved"


def test_dense_2_1_training_runs_and_the_context_term_counts(tmp_path):
    data = clips(6)
    kw = {"deep_supervision": True, "context_ramp": (0, 0), "image_every": 3}
    with_ctx = train(_v21_config(tmp_path / "a", steps=6, context_loss=0.5, **kw), iter([(x, 0) for x in data]))
    without = train(_v21_config(tmp_path / "b", steps=6, context_loss=0.0, **kw), iter([(x, 0) for x in data]))
    a, b = losses(with_ctx), losses(without)
    assert all(torch.isfinite(torch.tensor(a))) and a[0] > b[0]  # the context term adds to the loss


def test_v21_switches_need_a_2_1_encoder(tmp_path):
    with pytest.raises(ConfigError, match="hierarchical layers"):
        replace(tiny_config(tmp_path), v21=V21Section(deep_supervision=True))
    with pytest.raises(ConfigError, match="image tokenizer"):
        replace(tiny_config(tmp_path), v21=V21Section(image_every=2))
