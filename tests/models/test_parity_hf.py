"""Parity with Hugging Face ``transformers`` VJEPA2 (fp32, identical random weights) and lossless layout round trips.

HF models get random weights everywhere (biases, norms, non-zero mask tokens), are written with
``save_pretrained`` and read back through our loaders. HF takes RoPE positions from ``crop_size``, so inputs are
square at ``crop_size``; HF input is ``[B, T, C, H, W]``, ours ``[B, C, T, H, W]``.
"""

from dataclasses import replace

import pytest
import torch

transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from vjepa2.config import ClassifierConfig, encoder_config, predictor_config  # noqa: E402
from vjepa2.models import AttentiveClassifier, Predictor, VisionTransformer  # noqa: E402
from vjepa2.weights import (  # noqa: E402
    clean_state_dict,
    hf_configs,
    hf_to_ours,
    load_classifier,
    load_encoder,
    load_predictor,
    ours_to_hf,
    save_hf,
    save_official,
    to_official,
)

TOL = 1e-4
CLIP = {"crop_size": 64, "frames_per_clip": 4, "num_hidden_layers": 2}
SMALL_PRED = {"pred_hidden_size": 32, "pred_num_attention_heads": 2, "pred_num_hidden_layers": 2}
CONFIGS = {
    "tiny": {**CLIP, **SMALL_PRED, "hidden_size": 64, "num_attention_heads": 2},
    # ViT-g's MLP ratio 48/11 and an uneven RoPE split (head_dim 44 -> 14/14/14 + 2)
    "tiny_g": {**CLIP, **SMALL_PRED, "hidden_size": 88, "num_attention_heads": 2, "mlp_ratio": 48 / 11},
    # ViT-L width: 1024 wide, 16 heads (head_dim 64 -> RoPE 20/20/20 + 4), MLP 4096, the real 384-wide predictor
    "vitl_width": {**CLIP, "hidden_size": 1024, "num_attention_heads": 16, "pred_num_hidden_layers": 2},
}


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights of O(1)-preserving scale everywhere, including biases, LayerNorms and mask/query tokens."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * noise)
            elif p.ndim >= 2 and "tokens" not in name:
                p.copy_(noise * p[0].numel() ** -0.5)
            else:
                p.copy_(0.2 * noise)
    return model.eval()


def hf_model(cls_name: str, seed: int = 0, **config):
    cfg = transformers.VJEPA2Config(**config)
    return randomise(getattr(transformers, cls_name)(cfg), seed)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module", params=list(CONFIGS))
def hf_pair(request, tmp_path_factory):
    """``(hf VJEPA2Model, folder, our encoder, our predictor, video [B, T, C, H, W])``."""
    model = hf_model("VJEPA2Model", **CONFIGS[request.param])
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    cfgs = hf_configs(folder)
    video = torch.randn(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return model, folder, load_encoder(cfgs.encoder, folder), load_predictor(cfgs.predictor, folder), video


@torch.no_grad()
def test_encoder_matches_hf(hf_pair):
    hf, _, enc, _, video = hf_pair
    ref = hf.get_vision_features(video)
    ours = enc(video.transpose(1, 2))
    assert ours.shape == ref.shape == (2, 32, enc.cfg.embed_dim)
    assert max_diff(ours, ref) <= TOL


def context_target_masks(batch: int, n: int, n_ctx: int, n_tgt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample random (unsorted) context / target ids; sample 0 holds the largest target id, which HF needs."""
    gen = torch.Generator().manual_seed(2)
    ctx, tgt = [], []
    for b in range(batch):
        perm = torch.randperm(n - 1, generator=gen) if b == 0 else torch.randperm(n, generator=gen)
        if b == 0:
            perm = torch.cat([perm[:n_ctx], torch.tensor([n - 1]), perm[n_ctx:]])
        ctx.append(perm[:n_ctx])
        tgt.append(perm[n_ctx : n_ctx + n_tgt])
    return torch.stack(ctx), torch.stack(tgt)


@torch.no_grad()
@pytest.mark.parametrize("masks", ["full", "partial"])
def test_predictor_matches_hf(hf_pair, masks):
    hf, _, enc, pred, video = hf_pair
    n = 32
    if masks == "full":  # HF default: context = target = every token
        ctx, tgt = torch.arange(n).expand(2, -1), torch.arange(n).expand(2, -1)
        ref = hf(video).predictor_output.last_hidden_state
    else:
        ctx, tgt = context_target_masks(2, n, 12, 9)
        ref = hf(video, context_mask=[ctx], target_mask=[tgt]).predictor_output.last_hidden_state
    feats = enc(video.transpose(1, 2))  # HF gathers its context from the full-clip encoding
    context = torch.gather(feats, 1, ctx.unsqueeze(-1).expand(-1, -1, feats.shape[-1]))
    ours = pred(context, ctx, tgt)  # mask_index 1, as HF
    assert ours.shape == ref.shape
    assert max_diff(ours, ref) <= TOL


@torch.no_grad()
def test_interleaved_rope_does_not_match_hf(hf_pair):
    hf, folder, enc, _, video = hf_pair
    wrong = load_encoder(replace(enc.cfg, rope_layout="interleaved"), folder)
    assert max_diff(wrong(video.transpose(1, 2)), hf.get_vision_features(video)) > 1e-2


@torch.no_grad()
@pytest.mark.parametrize("name,pooler_layers", [("tiny", 3), ("tiny_g", 1)])
def test_classifier_matches_hf(name, pooler_layers, tmp_path):
    hf = hf_model("VJEPA2ForVideoClassification", 3, **CONFIGS[name], num_labels=7, num_pooler_layers=pooler_layers)
    hf.save_pretrained(tmp_path)
    video = torch.randn(2, 4, 3, 64, 64)
    enc = load_encoder(hf_configs(tmp_path).encoder, tmp_path)
    clf = load_classifier(tmp_path)
    assert clf.cfg.depth == pooler_layers + 1 and clf.cfg.norm_eps == 1e-6 and clf.cfg.num_classes == 7
    assert max_diff(clf(enc(video.transpose(1, 2))), hf(pixel_values_videos=video).logits) <= TOL


def assert_equal_dicts(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("cls_name", ["VJEPA2Model", "VJEPA2ForVideoClassification"])
def test_hf_to_ours_to_hf_is_lossless(cls_name, tmp_path):
    hf_model(cls_name, 4, **CONFIGS["tiny"], num_labels=3).save_pretrained(tmp_path)
    sd = load_file(tmp_path / "model.safetensors")
    parts = hf_to_ours(sd)
    assert bool(parts["classifier"]) == (cls_name != "VJEPA2Model")
    assert_equal_dicts(ours_to_hf(parts, classification=cls_name != "VJEPA2Model"), sd)


def our_models(seed: int = 5):
    enc = randomise(VisionTransformer(encoder_config("vit_test")), seed)
    pred = randomise(Predictor(predictor_config("vit_test")), seed + 1)
    clf_cfg = ClassifierConfig(embed_dim=48, num_heads=2, depth=3, num_classes=5, norm_eps=1e-6)
    return enc, pred, randomise(AttentiveClassifier(clf_cfg), seed + 2)


def test_official_to_ours_to_hf_to_ours_is_lossless():
    enc, pred, clf = our_models()
    ours = {
        "encoder": clean_state_dict(to_official(enc), "encoder"),
        "predictor": clean_state_dict(to_official(pred), "predictor"),
        "classifier": clean_state_dict(to_official(clf, "module."), "classifier"),
    }
    back = hf_to_ours(ours_to_hf(ours))
    for part, sd in ours.items():
        assert_equal_dicts(back[part], sd)
    assert_equal_dicts(ours["encoder"], enc.state_dict())


@torch.no_grad()
def test_official_file_to_hf_folder(tmp_path):
    """official .pt -> our loaders -> save_hf -> transformers and our loaders: same tensors, same outputs."""
    enc, pred, clf = our_models()
    path = save_official(tmp_path / "ckpt.pt", encoder=enc, predictor=pred, classifiers=[clf])
    enc1, pred1 = load_encoder("vit_test", path), load_predictor("vit_test", path)
    clf1 = load_classifier(path, num_heads=2, norm_eps=1e-6)
    folder = save_hf(tmp_path / "hf", encoder=enc1, predictor=pred1, classifier=clf1)
    hf = transformers.VJEPA2ForVideoClassification.from_pretrained(folder).eval()
    video = torch.randn(1, 4, 3, 64, 64)
    assert max_diff(hf(pixel_values_videos=video).logits, clf(enc(video.transpose(1, 2)))) <= TOL
    cfgs = hf_configs(folder)
    for ours, src in [
        (load_encoder("vit_test", folder), enc),
        (load_predictor(cfgs.predictor, folder), pred),
        (load_classifier(folder), clf),
    ]:
        assert_equal_dicts(ours.state_dict(), src.state_dict())
    base = transformers.VJEPA2Model.from_pretrained(folder).eval()  # the classification folder also loads as base
    assert max_diff(base.get_vision_features(video), enc(video.transpose(1, 2))) <= TOL
