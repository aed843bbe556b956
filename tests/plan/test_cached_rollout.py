"""The cached rollout (shared context, KV cache over the horizon, shared first layer, chunks, worker threads) against
the straightforward rollout it replaces, so the fast path cannot silently diverge."""

import dataclasses
import platform
import sys

import pytest
import torch
import torch.nn.functional as F

from vjepa2 import devices
from vjepa2.config import ac_predictor_config, encoder_config
from vjepa2.devices import intra_op_threads
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.plan import WorldModel
from vjepa2.plan import cached_rollout as cached_module
from vjepa2.plan.cached_rollout import CachedRollout, default_chunk, fold_rope, folded_step, folded_weights
from vjepa2.plan.energy import l1_energy

D = 48


def random_model(**overrides) -> ACPredictor:
    """An AC predictor with every weight perturbed (LayerNorms and biases too), so no path is trivially exact."""
    torch.manual_seed(0)
    model = ACPredictor(dataclasses.replace(ac_predictor_config("ac_vit_test"), **overrides)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for blk in model.predictor_blocks:  # sharper attention than at init
            blk.attn.qkv.weight[: 2 * blk.attn.qkv.in_features] *= 4
    return model


@pytest.fixture(scope="module")
def encoder() -> VisionTransformer:
    return VisionTransformer(encoder_config("vit_test")).eval()


def inputs(hw: int, S: int, T0: int, H: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z0 = F.layer_norm(torch.randn(1, T0, hw, D, generator=g), (D,))
    s0 = torch.cat([torch.rand(1, T0, 6, generator=g) * 0.4 - 0.2, torch.rand(1, T0, 1, generator=g)], -1)
    actions = torch.randn(S, H, 7, generator=g) * 0.05
    past = torch.randn(1, T0 - 1, 7, generator=g) * 0.05 if T0 > 1 else None
    return z0, s0, actions, past


@pytest.mark.parametrize("fold", [True, False], ids=["folded-rope", "rope"])
@pytest.mark.parametrize("share", [True, False], ids=["shared-first-layer", "plain-first-layer"])
@pytest.mark.parametrize(("T0", "H"), [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3)])
def test_cached_equals_reference_fp32(encoder, T0, H, share, fold):
    """fp32: the same numbers as the reference up to float32 rounding, for 1-3 context frames and horizons 1-3,
    with and without each shortcut; 5 candidates in chunks of 2 over 2 worker threads (uneven chunks and shares)."""
    pred = random_model()
    z0, s0, actions, past = inputs(16, 5, T0, H)
    ref = WorldModel(encoder, pred, dtype="fp32", cached=False).rollout(z0, s0, actions, past)
    fast = WorldModel(encoder, pred, dtype="fp32", chunk=2, workers=2, share_first_layer=share, fold_rope=fold)
    torch.testing.assert_close(fast.rollout(z0, s0, actions, past), ref, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_folded_rope_step_equals_block_step():
    """Per-position q/k weights with RoPE folded in give the rotated q/k of the fused qkv + apply_rope."""
    pred = random_model()
    blk = pred.predictor_blocks[1]
    x = torch.randn(3, 18, 24)
    rope = pred.step_rope(2, torch.float32, torch.device("cpu"))
    past = tuple(torch.randn(1, 2, 36, 12) for _ in range(2))
    out, (k, v) = folded_step(blk, x, fold_rope(blk, rope, torch.float32), past)
    ref, (k_ref, v_ref) = blk.step(x, rope, past)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k, k_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v, v_ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("T0", [1, 2])
def test_cached_equals_reference_residual_predictor(encoder, T0):
    pred = random_model(residual=True)
    z0, s0, actions, past = inputs(16, 4, T0, 2)
    ref = WorldModel(encoder, pred, dtype="fp32", cached=False).rollout(z0, s0, actions, past)
    out = WorldModel(encoder, pred, dtype="fp32", chunk=3).rollout(z0, s0, actions, past)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("T0", "H"), [(1, 1), (2, 2)])
def test_cached_bf16_within_bf16_noise(encoder, T0, H):
    """bf16 at the demo's token layout (8 x 8 patches + 2 conditioning tokens per step) and enough candidates for
    the grouped attention path: the cached rollout is as close to the fp32 reference as the bf16 reference is."""
    pred = random_model(patch_size=8)
    z0, s0, actions, past = inputs(64, 64, T0, H)
    truth = WorldModel(encoder, pred, dtype="fp32", cached=False).rollout(z0, s0, actions, past)
    ref = WorldModel(encoder, pred, dtype="bf16", cached=False).rollout(z0, s0, actions, past)
    out = WorldModel(encoder, pred, dtype="bf16").rollout(z0, s0, actions, past)
    ref_err, err = (ref - truth).abs().mean().item(), (out - truth).abs().mean().item()
    assert err < 1.25 * ref_err + 1e-4, (err, ref_err)
    assert (out - ref).abs().max() < 0.15  # layer-normed features: a few bf16 steps at most
    assert (out - ref).abs().mean() < 2 * ref_err


def test_energy_is_l1_of_the_rollout_and_workers_agree():
    pred = random_model()
    z0, s0, actions, _ = inputs(16, 7, 1, 2)
    goal = torch.randn(16, D)
    cache = CachedRollout(pred, z0, s0, dtype=None, chunk=3, workers=1)
    pred_feats = cache.rollout(actions)
    assert pred_feats.shape == (7, 16, D) and pred_feats.dtype == torch.float32
    torch.testing.assert_close(cache.energy(actions, goal), l1_energy(pred_feats, goal), atol=1e-6, rtol=1e-6)
    threaded = CachedRollout(pred, z0, s0, dtype=None, chunk=3, workers=3)
    torch.testing.assert_close(threaded.rollout(actions), pred_feats, atol=1e-5, rtol=1e-5)
    assert torch.get_num_threads() >= 1  # the caller's thread count is restored after the workers


def test_energy_fn_builds_the_cache_once_per_plan(encoder, monkeypatch):
    pred = random_model()
    wm = WorldModel(encoder, pred, dtype="fp32", chunk=4)
    z0, s0, actions, _ = inputs(16, 6, 1, 1)
    goal = torch.randn(16, D)
    built = []
    cached_rollout = wm.cached_rollout
    monkeypatch.setattr(wm, "cached_rollout", lambda *a: built.append(1) or cached_rollout(*a))
    fn = wm.energy_fn(z0, s0, goal)
    energies = [fn(actions), fn(actions * 2)]
    assert len(built) == 1
    ref = WorldModel(encoder, pred, dtype="fp32", cached=False).energy_fn(z0, s0, goal)
    torch.testing.assert_close(energies[0], ref(actions), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(energies[1], ref(actions * 2), atol=1e-5, rtol=1e-5)


def test_cached_rollout_checks_and_defaults(encoder, monkeypatch):
    pred = random_model()
    z0, s0, actions, past = inputs(16, 3, 2, 1)
    with pytest.raises(ValueError, match="past_actions"):
        CachedRollout(pred, z0, s0)
    with pytest.raises(ValueError, match="batch 1"):
        CachedRollout(pred, z0.expand(2, -1, -1, -1), s0.expand(2, -1, -1), past)
    with pytest.raises(ValueError, match="eval mode"):
        CachedRollout(pred.train(), z0, s0, past)
    wm = WorldModel(encoder, pred)  # puts the predictor in eval mode
    assert wm.uses_cache(z0, s0, past) and not WorldModel(encoder, pred, cached=False).uses_cache(z0, s0, past)
    pred.train()
    assert not wm.uses_cache(z0, s0, past)  # training: the reference path
    pred.eval()
    assert default_chunk(pred, torch.device("cpu")) >= 1 and default_chunk(pred, torch.device("cuda")) > 10**6
    assert CachedRollout(pred, z0, s0, past).fold_rope
    monkeypatch.setattr(cached_module, "FOLD_BYTES", 1000)  # folded weights over the budget: plain RoPE
    assert not CachedRollout(pred, z0, s0, past).fold_rope
    with pytest.raises(ValueError, match="candidates"):
        CachedRollout(pred, z0, s0, past).rollout(actions[:, :0])


def test_folded_weights_are_kept_until_the_weights_change():
    pred = random_model()
    first = folded_weights(pred, 1, torch.float32, torch.device("cpu"))
    assert folded_weights(pred, 1, torch.float32, torch.device("cpu")) is first  # reused by the next plan
    with torch.no_grad():
        pred.predictor_blocks[1].attn.qkv.weight.mul_(2)  # e.g. a training step or load_state_dict
    second = folded_weights(pred, 1, torch.float32, torch.device("cpu"))
    assert second is not first
    torch.testing.assert_close(second[1][0], 2 * first[1][0])
    torch.testing.assert_close(second[0][0], first[0][0])


def test_intra_op_threads_restores_the_count():
    saved = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == saved


def test_cpu_rollouts_keep_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(cached_module, "keep_freed_memory", lambda: calls.append(1))
    pred = random_model()
    z0, s0, _, past = inputs(16, 3, 1, 1)
    CachedRollout(pred, z0, s0, past)
    assert calls == [1]
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert devices.keep_freed_memory()  # mallopt accepted both values
