import pytest
import torch

import vjepa2.models.ac_predictor as ac_mod
from vjepa2.config import ac_predictor_config, predictor_config
from vjepa2.models import ACPredictor, Predictor, block_causal_mask


def sharpen(blocks) -> None:
    with torch.no_grad():
        for blk in blocks:
            blk.attn.qkv.weight[: 2 * blk.attn.qkv.in_features] *= 15


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    model = Predictor(predictor_config("vit_test")).eval()
    sharpen(model.predictor_blocks)
    with torch.no_grad():
        for i, token in enumerate(model.mask_tokens):
            token.normal_(generator=torch.Generator().manual_seed(i))
    return model


@torch.no_grad()
def test_predictions_do_not_depend_on_token_order(predictor):
    ctx_ids = torch.tensor([[0, 5, 9, 17, 30], [1, 2, 8, 20, 31]])
    tgt_ids = torch.tensor([[3, 12, 40], [4, 6, 63]])
    ctx = torch.randn(2, 5, 48)
    out = predictor(ctx, ctx_ids, tgt_ids)
    perm_c, perm_t = torch.tensor([3, 0, 4, 1, 2]), torch.tensor([2, 0, 1])
    shuffled = predictor(ctx[:, perm_c], ctx_ids[:, perm_c], tgt_ids[:, perm_t])
    torch.testing.assert_close(shuffled, out[:, perm_t], atol=1e-5, rtol=0)


@torch.no_grad()
def test_target_positions_and_mask_index_matter(predictor):
    ctx_ids, ctx = torch.tensor([[0, 5, 9, 17]]), torch.randn(1, 4, 48)
    a = predictor(ctx, ctx_ids, torch.tensor([[3, 40]]))
    b = predictor(ctx, ctx_ids, torch.tensor([[40, 3]]))
    torch.testing.assert_close(a, b.flip(1), atol=1e-5, rtol=0)
    assert (a[:, 0] - a[:, 1]).abs().max() > 1e-3  # identical mask tokens told apart by RoPE only
    c = predictor(ctx, ctx_ids, torch.tensor([[3, 40]]), mask_index=0)
    assert (a - c).abs().max() > 1e-3
    torch.testing.assert_close(predictor(ctx, ctx_ids, torch.tensor([[3, 40]]), mask_index=11), a)  # modulo 10


def test_predictor_shape_errors(predictor):
    with pytest.raises(ValueError, match="masks_x"):
        predictor(torch.randn(1, 4, 48), torch.tensor([[0, 1, 2]]), torch.tensor([[5]]))


@pytest.fixture(scope="module")
def ac() -> ACPredictor:
    torch.manual_seed(0)
    model = ACPredictor(ac_predictor_config("ac_vit_test")).eval()
    sharpen(model.predictor_blocks)
    return model


def _ac_inputs(steps: int, batch: int = 2):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(batch, steps * 16, 48, generator=g),
        torch.randn(batch, steps, 7, generator=g),
        torch.randn(batch, steps, 7, generator=g),
    )


@torch.no_grad()
def test_ac_predictor_is_block_causal(ac):
    x, a, s = _ac_inputs(4)
    out = ac(x, a, s)
    x2, a2, s2 = x.clone(), a.clone(), s.clone()
    x2[:, 2 * 16 :] += 1.0  # change frames 2, 3 ...
    a2[:, 2:] += 1.0  # ... and the actions and states from step 2 on
    s2[:, 2:] -= 1.0
    out2 = ac(x2, a2, s2)
    torch.testing.assert_close(out[:, : 2 * 16], out2[:, : 2 * 16], atol=1e-5, rtol=0)
    assert (out[:, 2 * 16 :] - out2[:, 2 * 16 :]).abs().max() > 1e-3


@torch.no_grad()
def test_ac_predictor_truncation_consistent(ac):
    """Predicting from the first k steps gives the first k steps of the full prediction (teacher forcing = rollout)."""
    x, a, s = _ac_inputs(3)
    full = ac(x, a, s)
    for k in (1, 2):
        torch.testing.assert_close(ac(x[:, : k * 16], a[:, :k], s[:, :k]), full[:, : k * 16], atol=1e-5, rtol=0)


@torch.no_grad()
def test_ac_actions_condition_the_current_step(ac):
    x, a, s = _ac_inputs(2)
    a2 = a.clone()
    a2[:, 0] += 1.0
    diff = (ac(x, a, s) - ac(x, a2, s)).abs()
    assert diff[:, :16].max() > 1e-3  # the action after frame 0 changes the prediction of frame 1


def test_ac_rope_rotates_only_time_on_conditioning_tokens(ac):
    cos, sin = ac._rope(3, torch.float32, torch.device("cpu"))
    per_step = 2 + 16
    assert cos.shape == (3 * per_step, 12)
    band = ac.rope.band
    cond = torch.cat([torch.arange(2) + k * per_step for k in range(3)])
    assert torch.all(sin[cond, band:] == 0) and torch.all(cos[cond, band:] == 1)
    assert torch.all(sin[per_step : per_step + 2, :band] != 0)  # step 1 rotates its time band
    frame = torch.arange(2, per_step)
    assert torch.any(sin[frame, band : 2 * band] != 0)  # patches rotate height


def test_block_causal_mask():
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(block_causal_mask(3, 2), expected)


def test_ac_shape_errors(ac):
    x, a, s = _ac_inputs(2)
    with pytest.raises(ValueError, match="tokens"):
        ac(x[:, :-1], a, s)
    with pytest.raises(ValueError, match="states"):
        ac(x, a, s[:, :1])


def test_ac_extrinsics_required_when_enabled():
    model = ACPredictor(ac_predictor_config("ac_vit_test", use_extrinsics=True))
    x, a, s = _ac_inputs(2)
    with pytest.raises(ValueError, match="extrinsics"):
        model(x, a, s)
    assert model(x, a, s, torch.randn(2, 2, 6)).shape == x.shape


@torch.no_grad()
def test_ac_residual_and_state_scale_options(ac):
    """``residual`` adds the input frame to the official output; ``state_scale`` multiplies the states."""
    x, a, s = _ac_inputs(2)
    for name, value, inputs in (("residual", True, (x, a, s)), ("state_scale", 0.5, (x, a, 2 * s))):
        model = ACPredictor(ac_predictor_config("ac_vit_test", **{name: value})).eval()
        model.load_state_dict(ac.state_dict())
        expected = ac(x, a, s) + (x if name == "residual" else 0)
        torch.testing.assert_close(model(*inputs), expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_ac_residual_starts_at_copy_baseline():
    """A fresh residual predictor returns its input frames unchanged (zero-initialised output projection)."""
    torch.manual_seed(0)
    x, a, s = _ac_inputs(2)
    model = ACPredictor(ac_predictor_config("ac_vit_test", residual=True)).eval()
    assert torch.equal(model(x, a, s), x)
    assert not torch.equal(ACPredictor(ac_predictor_config("ac_vit_test")).eval()(x, a, s), x)


@torch.no_grad()
def test_ac_step_by_step_with_kv_cache_equals_forward(ac):
    """Running the steps one at a time, each attending to the cached keys/values of the earlier ones, gives the full
    block-causal forward."""
    x, a, s = _ac_inputs(3)
    full = ac(x, a, s)
    tokens = ac.embed(x, a, s)  # [B, T, c + HW, d]
    outs, past = [], None
    for t in range(3):
        out, kv = ac.step(tokens[:, t], t, past)
        outs.append(out)
        if past is not None:
            kv = [(torch.cat([pk, k], 2), torch.cat([pv, v], 2)) for (pk, pv), (k, v) in zip(past, kv, strict=True)]
        past = kv
    stepped = ac.readout(torch.stack(outs, dim=1), x)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_ac_step_shared_context_cache_broadcasts(ac):
    x, a, s = _ac_inputs(2, batch=3)
    x[1:, :16], a[1:, 0], s[1:, 0] = x[0, :16], a[0, 0], s[0, 0]  # step 0 shared by the batch
    full = ac(x, a, s)
    tokens = ac.embed(x, a, s)
    _, kv = ac.step(tokens[:1, 0], 0)  # the shared step, batch 1
    out, _ = ac.step(tokens[:, 1], 1, kv)
    torch.testing.assert_close(ac.readout(out[:, None], x[:, 16:]), full[:, 16:], atol=1e-5, rtol=1e-5)


def test_ac_one_step_needs_no_mask_and_rope_tables_are_cached(ac, monkeypatch):
    x, a, s = _ac_inputs(1)
    masks = []
    run = ac_mod.run_blocks
    monkeypatch.setattr(
        ac_mod, "run_blocks", lambda b, t, rope, mask, **kw: masks.append(mask) or run(b, t, rope, mask, **kw)
    )
    with torch.no_grad():
        ac(x, a, s)
        ac(*_ac_inputs(2))
    assert masks[0] is None and masks[1].shape == (36, 36)  # one step: full attention, no mask
    first = ac._rope(2, torch.float32, torch.device("cpu"))
    assert ac._rope(2, torch.float32, "cpu") is first
    with torch.inference_mode():
        tables = ac._rope(5, torch.bfloat16, torch.device("cpu"))
    assert not tables[0].is_inference()  # a cache filled while planning still works in training
