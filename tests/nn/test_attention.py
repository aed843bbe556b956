"""The fast CPU paths (blocked bf16 attention, one-pass RoPE, patch embedding as a matmul) against the plain ones."""

import pytest
import torch
import torch.nn.functional as F

from vjepa2.config import encoder_config
from vjepa2.models import VisionTransformer
from vjepa2.nn import attention as attn_mod
from vjepa2.nn.attention import Attention, attend, blocked_attention, use_blocked_attention
from vjepa2.nn.block import MLP
from vjepa2.nn.rope import apply_rope, rotate_pairs


def sdpa(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)


def qkv(B=2, H=3, Nq=150, Nk=140, D=16, dtype=torch.float32):
    return tuple(torch.randn(B, H, n, D, dtype=dtype) for n in (Nq, Nk, Nk))


def random_mask(shape):
    mask = torch.rand(shape) > 0.4
    mask[..., 0] = True  # every query sees at least one key
    return mask


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    """Let the small test shapes take the blocked path (in production it starts at ~362^2 pairs per head)."""
    monkeypatch.setattr(attn_mod, "BLOCKED_MIN_PAIRS", 100)


@pytest.fixture(params=[1 << 20, 2 * 150 * 140, 8 * 140], ids=["grouped", "2-heads", "8-row-bands"])
def score_block(request, monkeypatch):
    """Score blocks of all heads of both samples at once, of 2 heads (3 = 2 + 1), and of one head in 8-row bands
    (150 queries: the last band partial)."""
    monkeypatch.setattr(attn_mod, "_SCORE_BLOCK", request.param)


@pytest.mark.parametrize("mask_shape", [None, (150, 140), (2, 1, 150, 140), (2, 3, 150, 140), (2, 1, 1, 140)])
def test_blocked_equals_sdpa_fp32(score_block, mask_shape):
    q, k, v = qkv()
    mask = None if mask_shape is None else random_mask(mask_shape)
    torch.testing.assert_close(blocked_attention(q, k, v, mask), sdpa(q, k, v, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mask_shape", [None, (66, 66), (5, 1, 66, 66), (5, 3, 66, 66), (5, 1, 1, 66)])
def test_grouped_short_sequences_equal_sdpa_fp32(monkeypatch, mask_shape):
    """Short sequences (the AC predictor's 66 tokens per step): whole samples per score block, 2 samples per group
    here, so 5 samples end in a partial group."""
    monkeypatch.setattr(attn_mod, "_SCORE_BLOCK", 2 * 3 * 66 * 66)
    q, k, v = qkv(B=5, Nq=66, Nk=66)
    mask = None if mask_shape is None else random_mask(mask_shape)
    torch.testing.assert_close(blocked_attention(q, k, v, mask), sdpa(q, k, v, mask), atol=1e-5, rtol=1e-5)
    strided = torch.randn(5, 66, 3, 3, 16)  # q/k/v as views of a fused qkv output, like Attention.heads gives
    q, k, v = strided.permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(blocked_attention(q, k, v, mask), sdpa(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_fully_masked_rows_give_zeros_like_sdpa():
    q, k, v = qkv()
    mask = random_mask((150, 140))
    mask[5] = False
    out = blocked_attention(q, k, v, mask)
    torch.testing.assert_close(out, sdpa(q, k, v, mask), atol=1e-5, rtol=1e-5)
    assert out[:, 5].abs().max() == 0


@pytest.mark.parametrize("masked", [False, True])
@torch.inference_mode()
def test_attend_bf16_takes_fast_path_and_matches_sdpa(score_block, masked):
    q, k, v = (t.bfloat16() for t in qkv(D=32))
    mask = random_mask((150, 140)) if masked else None
    assert use_blocked_attention(q, k, v, mask)
    ref = sdpa(q.float(), k.float(), v.float(), mask)
    out = attend(q, k, v, mask)
    assert out.dtype == torch.bfloat16
    # bf16 scores/probabilities: same error scale as SDPA's own bf16 result
    sdpa_err = (sdpa(q, k, v, mask).float() - ref).abs().max().item()
    err = (out.float() - ref).abs().max().item()
    assert err < max(3 * sdpa_err, 2e-2), (err, sdpa_err)


def test_fast_path_selection(monkeypatch):
    q, k, v = qkv()
    assert not use_blocked_attention(q, k, v)  # fp32 stays on SDPA (exact semantics)
    qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
    assert use_blocked_attention(qb, kb, vb)
    assert use_blocked_attention(qb, kb, vb, torch.ones(150, 140, dtype=torch.bool))
    assert not use_blocked_attention(qb, kb, vb, torch.zeros(150, 140))  # additive float masks -> SDPA
    assert not use_blocked_attention(qb[:, :, :9], kb[:, :, :9], vb[:, :, :9])  # 81 < 100 pairs -> SDPA
    monkeypatch.setattr(attn_mod, "BLOCKED_MIN_PAIRS", 1 << 17)  # production thresholds
    short = torch.zeros(8, 3, 66, 32, dtype=torch.bfloat16)  # 8 x 3 x 66^2 >= GROUPED_MIN_PAIRS pairs in all
    assert use_blocked_attention(short, short, short)
    assert not use_blocked_attention(short[:1], short[:1], short[:1])  # one sample: SDPA
    assert not use_blocked_attention(short[:2], short[:2], short[:2])  # too little work in all: SDPA
    qg = qb.clone().requires_grad_()
    assert not use_blocked_attention(qg, kb, vb)  # autograd -> SDPA
    with torch.no_grad():
        assert use_blocked_attention(qg, kb, vb)


def test_attention_module_bf16_close_to_fp32():
    torch.manual_seed(0)
    layer = Attention(96, 3).eval()
    x = torch.randn(2, 200, 96)
    cos, sin = torch.randn(200, 32).cos(), torch.randn(200, 32).sin()
    rope = (cos.unsqueeze(-3), sin.unsqueeze(-3))
    with torch.inference_mode():
        ref = layer(x, rope)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x, rope)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_rope_matches_textbook_formula_bitwise(dtype):
    x = torch.randn(2, 3, 2, 7, 20).to(dtype)[:, :, 1]  # strided, like the q/k views of the fused qkv
    cos, sin = torch.randn(7, 20).to(dtype), torch.randn(7, 20).to(dtype)
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)
    assert torch.equal(rotate_pairs(x), rotated)
    assert torch.equal(apply_rope(x, (cos, sin)), x * cos + rotated * sin)


def reference_encoder(model: VisionTransformer, video: torch.Tensor) -> torch.Tensor:
    """The encoder written out with the plain ops (Conv3d, stack-based RoPE, SDPA): the official semantics."""
    x = model.patch_embed.proj(video).flatten(2).transpose(1, 2)
    B, N, D = x.shape
    _, h_p, w_p = model.grid(video)
    ids = torch.arange(N)
    cos, sin = model.rope(ids // (h_p * w_p), (ids % (h_p * w_p)) // w_p, ids % w_p, dtype=x.dtype)
    for blk in model.blocks:
        a = blk.attn
        q, k, v = a.qkv(blk.norm1(x)).view(B, N, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)

        def rope(t):
            t1, t2 = t.unflatten(-1, (-1, 2)).unbind(-1)
            return t * cos + torch.stack((-t2, t1), dim=-1).flatten(-2) * sin

        o = F.scaled_dot_product_attention(rope(q), rope(k), v).transpose(1, 2).flatten(2)
        x = x + a.proj(o)
        x = x + blk.mlp(blk.norm2(x))
    return model.norm(x)


@torch.inference_mode()
def test_encoder_fp32_unchanged_and_bf16_close(monkeypatch):
    model = VisionTransformer(encoder_config("vit_test")).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.1 if name.endswith("bias") or "norm" in name else 0.05))
    video = torch.randn(2, 3, 8, 96, 96)  # 4 x 6 x 6 = 144 tokens
    calls = []
    blocked = attn_mod.blocked_attention
    monkeypatch.setattr(attn_mod, "blocked_attention", lambda *a: calls.append(1) or blocked(*a))
    ref = reference_encoder(model, video)
    assert torch.equal(model(video), ref)  # fp32: bit for bit the plain computation, through SDPA
    assert not calls
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video)
    assert len(calls) == len(model.blocks)  # bf16: every block took the blocked path
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_patch_embed_matmul_equals_conv():
    model = VisionTransformer(encoder_config("vit_test")).eval()
    video = torch.randn(2, 3, 5, 70, 50)  # partial tubelets/patches are dropped like Conv3d does
    pe = model.patch_embed
    torch.testing.assert_close(pe._as_matmul(video), pe.proj(video).flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_mlp_inference_path_matches_the_autograd_path():
    """Under no-grad the MLP computes GELU in place on fc1's output; it must equal the autograd path exactly."""
    torch.manual_seed(0)
    mlp, x = MLP(16, 64), torch.randn(2, 5, 16, requires_grad=True)
    y = mlp(x)
    y.sum().backward()  # the autograd path keeps working
    with torch.no_grad():
        assert torch.equal(mlp(x), y.detach())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = mlp.fc2(F.gelu(mlp.fc1(x)))
        assert torch.equal(mlp(x), ref)
