"""V-JEPA 2.1 models: released sizes and key lists, invariants of the real models, and a reference written from the
spec (``../shared/reference/vjepa21.md``) with its own math, sharing only the weights."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from vjepa2.config import encoder_config, predictor_config
from vjepa2.models import Predictor, VisionTransformer
from vjepa2.models.encoder import rescaled_positions
from vjepa2.weights import WeightsError, load_encoder, load_predictor
from vjepa2.weights.checks import mismatch_report
from vjepa2.weights.official import clean_state_dict

RELEASED = {  # spec section 1-2: encoder params, encoder keys, predictor params, predictor keys
    "vjepa2_1_vit_base_384": (86_833_152, 158, 22_874_752, 162),
    "vjepa2_1_vit_large_384": (304_680_960, 302, 22_973_056, 162),
    "vjepa2_1_vit_giant_384": (1_013_267_968, 494, 55_400_704, 308),
    "vjepa2_1_vit_gigantic_384": (1_845_216_768, 590, 59_433_472, 308),
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_sizes_and_official_key_lists_load_at_full_size(name):
    enc_params, enc_keys, pred_params, pred_keys = RELEASED[name]
    with torch.device("meta"):
        enc, pred = VisionTransformer(encoder_config(name)), Predictor(predictor_config(name))
    assert sum(p.numel() for p in enc.parameters()) == enc_params
    assert sum(p.numel() for p in pred.parameters()) == pred_params
    assert (len(enc.state_dict()), len(pred.state_dict())) == (enc_keys, pred_keys)
    for model in (enc, pred):  # the official layout: module.backbone. prefixes, no pos_embed, no final norm
        official = {f"module.backbone.{k}": v for k, v in model.state_dict().items()}
        assert mismatch_report(model.state_dict(), clean_state_dict(official, name)) == []
    keys = enc.state_dict()
    assert keys["patch_embed_img.proj.weight"].shape[2] == 1 and keys["patch_embed.proj.weight"].shape[2] == 2
    assert "norm.weight" not in keys and "norms_block.3.weight" in keys and keys["img_mod_embed"].shape[:2] == (1, 1)
    assert pred.state_dict()["predictor_proj_context.weight"].shape == pred.state_dict()["predictor_proj.weight"].shape


def test_default_checkpoint_entry_is_the_hubs():
    assert encoder_config("vjepa2_1_vit_base_384").checkpoint_key == "ema_encoder"
    assert encoder_config("vjepa2_1_vit_large_384").checkpoint_key == "ema_encoder"
    assert encoder_config("vjepa2_1_vit_giant_384").checkpoint_key == "target_encoder"
    assert encoder_config("vjepa2_1_vit_gigantic_384").checkpoint_key == "target_encoder"


def _tiny(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    enc = VisionTransformer(encoder_config("vjepa2_1_vit_test")).eval()
    with torch.no_grad():  # nothing left at its init value, so that an omitted term shows
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return enc


def test_an_image_takes_the_image_tokenizer_not_a_two_frame_repeat():
    enc = _tiny()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        as_image = enc(image)
        as_frame = enc(image[:, :, None])
        as_clip = enc(image[:, :, None].repeat(1, 1, 2, 1, 1))
    assert as_image.shape == as_clip.shape == (1, 16, 48) and torch.equal(as_image, as_frame)
    assert (as_image - as_clip).abs().max() > 1e-2
    assert enc.grid(image) == (1, 4, 4) and enc.grid(image[:, :, None].repeat(1, 1, 4, 1, 1)) == (2, 4, 4)


def test_positions_are_rescaled_to_the_16x16_pretraining_grid():
    h, w = torch.arange(24.0), torch.arange(24.0)
    rh, rw = rescaled_positions(h, w, (24, 24), 16)  # 384 px
    assert rh[0] == 0 and rh[-1] == pytest.approx(15.0) and rw[-1] == pytest.approx(15.0)
    rh, rw = rescaled_positions(torch.arange(6.0), torch.arange(8.0), (6, 8), 16)  # non-square: each axis alone
    assert rh[-1] == pytest.approx(15.0) and rw[-1] == pytest.approx(15.0) and rw[1] == pytest.approx(15 / 7)
    enc = _tiny()
    with pytest.raises(ValueError, match="1x4 patch grid cannot be rescaled"):
        enc(torch.randn(1, 3, 2, 16, 64))


# --- a reference forward from the spec: its own patch embedding, RoPE and attention --------------------------------


def _ref_rope(x: torch.Tensor, pos: list[torch.Tensor]) -> torch.Tensor:
    """Textbook (interleaved) 3D RoPE: band ``d`` per axis of adjacent pairs, angle ``p * 10000^(-2j/d)``."""
    hd = x.shape[-1]
    d = 2 * ((hd // 3) // 2)
    out = x.clone()
    for axis, p in enumerate(pos):
        sl = x[..., axis * d : (axis + 1) * d]
        j = torch.arange(d // 2, dtype=torch.float64)
        theta = p.double()[:, None] * 10000.0 ** (-2 * j / d)  # [N, d/2]
        cos, sin = theta.cos().float(), theta.sin().float()
        a, b = sl[..., 0::2], sl[..., 1::2]
        out[..., axis * d : (axis + 1) * d : 2] = a * cos - b * sin
        out[..., axis * d + 1 : (axis + 1) * d : 2] = b * cos + a * sin
    return out


def _ref_encoder(enc: VisionTransformer, video: torch.Tensor, keep: torch.Tensor | None = None):
    """Spec section 3: routing, modality embedding, masking, rescaled RoPE, blocks, per-level norms."""
    sd = {k: v.detach() for k, v in enc.state_dict().items()}
    image = video.shape[2] == 1
    pre = "patch_embed_img" if image else "patch_embed"
    t_size = 1 if image else 2
    x = F.conv3d(video, sd[f"{pre}.proj.weight"], sd[f"{pre}.proj.bias"], stride=(t_size, 16, 16))
    T, H, W = x.shape[2:]
    x = x.flatten(2).transpose(1, 2) + sd["img_mod_embed" if image else "video_mod_embed"]
    ids = torch.arange(T * H * W)
    if keep is not None:
        ids, x = keep, x[:, keep]
    t, h, w = ids // (H * W), (ids % (H * W)) // W, ids % W
    pos = [t.float(), h * 15.0 / (H - 1), w * 15.0 / (W - 1)]
    heads, levels = enc.cfg.num_heads, {}
    for i in range(enc.cfg.depth):
        p = f"blocks.{i}."
        y = F.layer_norm(x, (x.shape[-1],), sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-6)
        q, k, v = F.linear(y, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).chunk(3, dim=-1)
        q, k, v = (z.unflatten(-1, (heads, -1)).transpose(1, 2) for z in (q, k, v))
        q, k = _ref_rope(q, pos), _ref_rope(k, pos)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v
        x = x + F.linear(att.transpose(1, 2).flatten(2), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        y = F.layer_norm(x, (x.shape[-1],), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-6)
        y = F.gelu(F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
        x = x + F.linear(y, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        if i in enc.cfg.hierarchical_layers:
            k_ = enc.cfg.hierarchical_layers.index(i)
            norm = sd[f"norms_block.{k_}.weight"], sd[f"norms_block.{k_}.bias"]
            levels[i] = F.layer_norm(x, (x.shape[-1],), *norm, 1e-6)
    return levels


@pytest.mark.parametrize("shape", [(1, 3, 4, 64, 64), (2, 3, 2, 48, 80), (1, 3, 1, 64, 80), (1, 3, 1, 32, 32)])
def test_encoder_matches_the_reference_written_from_the_spec(shape):
    enc = _tiny()
    video = torch.randn(shape)
    levels = _ref_encoder(enc, video)
    with torch.no_grad():
        torch.testing.assert_close(enc(video), levels[3], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(enc(video, out_layers=[1, 3])[0], levels[1], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(enc(video, hierarchical=True), torch.cat([levels[i] for i in range(4)], -1),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip


def test_masked_forward_matches_the_reference():
    enc = _tiny()
    video = torch.randn(1, 3, 4, 64, 64)
    keep = torch.tensor([0, 3, 5, 17, 18, 30])
    with torch.no_grad():
        torch.testing.assert_close(
            enc(video, masks=keep[None]), _ref_encoder(enc, video, keep)[3], atol=1e-4, rtol=1e-4
        )


def test_2_1_layout_is_not_the_2_0_one():
    enc = _tiny()
    video = torch.randn(1, 3, 4, 64, 64)
    tiled = VisionTransformer(replace(enc.cfg, rope_layout="tiled")).eval()
    tiled.load_state_dict(enc.state_dict())
    unscaled = VisionTransformer(replace(enc.cfg, rope_grid=None)).eval()
    unscaled.load_state_dict(enc.state_dict())
    with torch.no_grad():
        ours = enc(video)
        assert (ours - tiled(video)).abs().max() > 1e-3 and (ours - unscaled(video)).abs().max() > 1e-3


def test_predictor_levels_modality_and_context():
    torch.manual_seed(0)
    pred = Predictor(predictor_config("vjepa2_1_vit_test")).eval()
    with torch.no_grad():
        for p in pred.parameters():
            p.add_(0.05 * torch.randn_like(p))
    enc = _tiny()
    video = torch.randn(2, 3, 4, 64, 64)
    ctx, tgt = torch.arange(0, 20)[None].repeat(2, 1), torch.arange(20, 32)[None].repeat(2, 1)
    with torch.no_grad():
        z = enc(video, masks=ctx, hierarchical=True)  # [2, 20, 4 * 48]
        targets, context = pred(z, ctx, tgt)
        image_t, _ = pred(z, ctx, tgt, mod="image")
        other_token, _ = pred(z, ctx, tgt, mask_index=2)
        same_token, _ = pred(z, ctx, tgt, mask_index=10)  # 10 % 8 == 2
    assert targets.shape == (2, 12, 4 * 48) and context.shape == (2, 20, 4 * 48)
    assert (targets - image_t).abs().max() > 1e-3 and (targets - other_token).abs().max() > 1e-3
    torch.testing.assert_close(other_token, same_token)
    assert isinstance(pred.predictor_embed, torch.nn.Sequential) and pred.predictor_embed[0].in_features == 4 * 48


def test_loading_reads_the_hub_entry_and_never_falls_back_to_the_student(tmp_path):
    cfg = replace(encoder_config("vjepa2_1_vit_test"), checkpoint_key="ema_encoder")  # as the distilled B/L
    ema, student = _tiny(0), _tiny(1)
    wrap = lambda m: {f"module.backbone.{k}": v for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"ema_encoder": wrap(ema), "encoder": wrap(student), "predictor": {}}, tmp_path / "b.pt")
    loaded = load_encoder(cfg, tmp_path / "b.pt")
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, ema.state_dict()[k])
    torch.save({"encoder": wrap(student)}, tmp_path / "student_only.pt")
    with pytest.raises(WeightsError, match="no 'ema_encoder' entry"):
        load_encoder(cfg, tmp_path / "student_only.pt")
    torch.save({"encoder": wrap(student)}, tmp_path / "g.pt")  # 2.1 target_encoder entry: no fallback either
    with pytest.raises(WeightsError, match="no 'target_encoder' entry"):
        load_encoder("vjepa2_1_vit_test", tmp_path / "g.pt")
    pred = Predictor(predictor_config("vjepa2_1_vit_test"))
    torch.save({"predictor": {f"module.backbone.{k}": v for k, v in pred.state_dict().items()}}, tmp_path / "p.pt")
    assert load_predictor("vjepa2_1_vit_test", tmp_path / "p.pt") is not None


def test_embed_dense_per_level_features(tmp_path):
    from safetensors import safe_open

    from tests.test_cli import write_clip
    from vjepa2.cli import main

    clip = write_clip(tmp_path / "clip.mp4")
    out = tmp_path / "f.safetensors"
    args = ["embed", str(clip), "--model", "vjepa2_1_vit_test", "--frames", "4", "--resolution", "64"]
    assert main([*args, "--pool", "none", "--levels", "--out", str(out)]) == 0
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor(str(clip)).shape == (2 * 4 * 4, 4 * 48)
    assert main(["embed", str(clip), "--model", "vit_test", "--levels", "--out", str(tmp_path / "g.st")]) == 2
