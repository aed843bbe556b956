"""Official-layout checkpoints written here (prefixes, stray keys, AC and probe files) load exactly and strictly."""

from dataclasses import replace

import pytest
import torch

from vjepa2.config import ClassifierConfig, ac_predictor_config, encoder_config, predictor_config
from vjepa2.models import ACPredictor, AttentiveClassifier, Predictor, VisionTransformer
from vjepa2.weights import (
    WeightsError,
    WeightsNotFoundError,
    describe_weights,
    load_ac_predictor,
    load_classifier,
    load_encoder,
    load_predictor,
    save_hf,
    save_official,
)

PRE = "module.backbone."


def randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial weights everywhere (biases, norms and mask tokens included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return module.eval()


def prefixed(module: torch.nn.Module, prefix: str = PRE) -> dict:
    return {prefix + k: v.clone() for k, v in module.state_dict().items()}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def models():
    enc = randomise(VisionTransformer(encoder_config("vit_test")), 1)
    tgt = randomise(VisionTransformer(encoder_config("vit_test")), 2)
    pred = randomise(Predictor(predictor_config("vit_test")), 3)
    return enc, tgt, pred


@pytest.fixture
def video():
    return torch.randn(2, 3, 4, 64, 64)


@torch.no_grad()
def test_official_pretraining_checkpoint(models, video, tmp_path):
    enc, tgt, pred = models
    assert len(pred.mask_tokens) == 10
    ckpt = {
        "encoder": {**prefixed(enc), PRE + "pos_embed": torch.zeros(1, 32, 48)},
        "target_encoder": prefixed(tgt),
        "predictor": {**prefixed(pred), PRE + "predictor_pos_embed": torch.zeros(1, 32, 24)},
        "epoch": 7,
        "opt": {"state": {}, "param_groups": [{"lr": 1e-4}]},
    }
    path = tmp_path / "latest.pt"
    torch.save(ckpt, path)
    assert torch.equal(load_encoder("vit_test", path)(video), tgt(video))  # default: target_encoder
    assert torch.equal(load_encoder("vit_test", path, key="encoder")(video), enc(video))
    ctx, ids = enc(video)[:, :12], torch.arange(12).expand(2, -1)
    tgt_ids = torch.tensor([[12, 20, 31], [15, 16, 30]])
    loaded = load_predictor("vit_test", path)
    for mask_index in (0, 1, 7):
        assert torch.equal(loaded(ctx, ids, tgt_ids, mask_index), pred(ctx, ids, tgt_ids, mask_index))


def test_key_fallback_and_missing_key(models, video, tmp_path):
    enc, _, pred = models
    path = tmp_path / "enc_only.pt"
    torch.save({"encoder": prefixed(enc), "predictor": prefixed(pred)}, path)
    assert_same_weights(load_encoder("vit_test", path), enc)  # target_encoder absent -> encoder
    with pytest.raises(WeightsError, match=r"no 'ema' entry; its top-level keys are \['encoder', 'predictor'\]"):
        load_encoder("vit_test", path, key="ema")
    torch.save({"epoch": 1}, path)
    with pytest.raises(WeightsError, match=r"'target_encoder' or 'encoder'.*\['epoch'\]"):
        load_encoder("vit_test", path)


@torch.no_grad()
def test_ac_checkpoint(models, video, tmp_path):
    enc = models[0]
    ac = randomise(ACPredictor(ac_predictor_config("ac_vit_test")), 4)
    sd = prefixed(ac, "module.")
    assert any(k.startswith("module.extrinsics_encoder.") for k in sd)
    path = tmp_path / "ac.pt"
    torch.save({"encoder": prefixed(enc, "module."), "target_encoder": prefixed(enc, "module."), "predictor": sd}, path)
    x, a, s = torch.randn(1, 2 * 16, 48), torch.randn(1, 2, 7), torch.randn(1, 2, 7)
    assert torch.equal(load_ac_predictor("ac_vit_test", path)(x, a, s), ac(x, a, s))
    assert_same_weights(load_encoder("vit_test", path), enc)
    with pytest.raises(WeightsError, match="action-conditioned predictor weights .*looks like ac_vit_test"):
        load_predictor("vit_test", path)


def probe(num_classes, seed: int, depth: int = 2) -> AttentiveClassifier:
    return randomise(
        AttentiveClassifier(ClassifierConfig(embed_dim=48, num_heads=4, depth=depth, num_classes=num_classes)), seed
    )


@torch.no_grad()
def test_probe_checkpoint_picks_index_and_infers_sizes(tmp_path):
    probes = [probe(5, 10), probe(5, 11)]
    path = tmp_path / "ssv2-probe.pt"
    torch.save({"classifiers": [prefixed(p, "module.") for p in probes], "epoch": 20}, path)
    tokens = torch.randn(2, 32, 48)
    loaded = load_classifier(path, index=1, num_heads=4)
    assert (loaded.cfg.embed_dim, loaded.cfg.depth, loaded.cfg.num_classes, loaded.cfg.norm_eps) == (48, 2, 5, 1e-5)
    assert torch.equal(loaded(tokens), probes[1](tokens))
    assert load_classifier(path).cfg.num_heads == 16  # the official probes' default
    with pytest.raises(WeightsError, match="index 2 out of range; 'classifiers' holds 2"):
        load_classifier(path, index=2)


EK100_NAMES = {"heads.0": "verb_classifier", "heads.1": "noun_classifier", "heads.2": "action_classifier"}


def ek100_layout(clf: AttentiveClassifier) -> dict:
    """The official EK100 probe keys: ``module.{verb,noun,action}_classifier`` (``action_classifier`` alone)."""
    names = EK100_NAMES if isinstance(clf.cfg.num_classes, tuple) else {"linear": "action_classifier"}
    out = {}
    for key, value in prefixed(clf, "module.").items():
        for ours, official in names.items():
            key = key.replace(f"module.{ours}.", f"module.{official}.")
        out[key] = value
    return out


@torch.no_grad()
def test_ek100_probe_names(tmp_path):
    ek, action_only = probe((3, 4, 6), 12, depth=1), probe(6, 13)
    sd, sd_action = ek100_layout(ek), ek100_layout(action_only)
    assert "module.noun_classifier.weight" in sd and "module.action_classifier.bias" in sd_action
    path = tmp_path / "ek100.pt"
    torch.save({"classifiers": [sd, sd_action]}, path)
    tokens = torch.randn(2, 32, 48)
    loaded = load_classifier(path, num_heads=4)
    assert loaded.cfg.num_classes == (3, 4, 6) and loaded.cfg.depth == 1
    for a, b in zip(loaded(tokens), ek(tokens), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(load_classifier(path, index=1, num_heads=4)(tokens), action_only(tokens))


def test_save_official_round_trip(models, tmp_path):
    enc, tgt, pred = models
    clf = probe((3, 4, 6), 14)
    path = save_official(tmp_path / "ckpt.pt", encoder=enc, target_encoder=tgt, predictor=pred, classifiers=[clf])
    raw = torch.load(path, weights_only=True)
    assert all(k.startswith(PRE) for k in raw["encoder"]) and "module.verb_classifier.weight" in raw["classifiers"][0]
    assert_same_weights(load_encoder("vit_test", path), tgt)
    assert_same_weights(load_encoder("vit_test", path, key="encoder"), enc)
    assert_same_weights(load_predictor("vit_test", path), pred)
    assert_same_weights(load_classifier(path, num_heads=4), clf)
    ac = ACPredictor(ac_predictor_config("ac_vit_test"))
    path = save_official(tmp_path / "ac.pt", encoder=enc, predictor=ac, extra={"epoch": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 3 and all(k.startswith("module.") and "backbone" not in k for k in raw["predictor"])
    assert_same_weights(load_ac_predictor("ac_vit_test", path), ac)
    assert_same_weights(load_encoder("vit_test", path), enc)  # target_encoder defaults to the encoder


def test_wrong_shapes_are_refused_with_keys_and_guess(tmp_path):
    path = save_official(tmp_path / "tiny.pt", encoder=VisionTransformer(encoder_config("vit_tiny")))
    with pytest.raises(WeightsError) as err:
        load_encoder("vit_test", path)
    msg = str(err.value)
    assert str(path) in msg and "encoder preset 'vit_test'" in msg
    assert "blocks.0.attn.qkv.weight: expected (144, 48), found (576, 192)" in msg
    assert "blocks.0.mlp.fc1.weight: expected (192, 48), found (768, 192)" in msg
    assert "unexpected keys" in msg and "blocks.5.norm1.weight (192,)" in msg
    assert "width 192, depth 6, MLP hidden 768" in msg and "looks like vit_tiny" in msg


def test_mask_token_count_mismatch(models, tmp_path):
    pred6 = Predictor(predictor_config("vit_test", num_mask_tokens=6))
    path = save_official(tmp_path / "six.pt", predictor=pred6)
    with pytest.raises(WeightsError, match=r"(?s)4 missing keys:.*mask_tokens\.6 \(1, 1, 24\).*6 mask tokens"):
        load_predictor("vit_test", path)
    assert len(load_predictor(replace(predictor_config("vit_test"), num_mask_tokens=6), path).mask_tokens) == 6


def meta(*shape):
    return torch.empty(shape, device="meta")


def test_preset_guess_for_released_sizes():
    giant = {"patch_embed.proj.weight": meta(1408, 3, 2, 16, 16)}
    giant.update({f"blocks.{i}.mlp.fc1.weight": meta(6144, 1408) for i in range(40)})
    assert "looks like vit_giant or vit_giant_384" in describe_weights(giant)
    large_pred = {"predictor_embed.weight": meta(384, 1024), "predictor_blocks.0.mlp.fc1.weight": meta(1536, 384)}
    large_pred.update({f"predictor_blocks.{i}.norm1.weight": meta(384) for i in range(12)})
    large_pred.update({f"mask_tokens.{i}": meta(1, 1, 384) for i in range(10)})
    assert "10 mask tokens): looks like vit_large " in describe_weights(large_pred)
    ac = {"predictor_embed.weight": meta(1024, 1408), "action_encoder.weight": meta(1024, 7)}
    ac.update({f"predictor_blocks.{i}.mlp.fc1.weight": meta(4096, 1024) for i in range(24)})
    assert "looks like ac_vit_giant" in describe_weights(ac)


class NotAllowed:
    pass


def test_non_checkpoints_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(WeightsError, match=f"{text} is not a PyTorch checkpoint"):
        load_encoder("vit_test", text)
    pickled = tmp_path / "pickled.pt"
    torch.save({"encoder": NotAllowed()}, pickled)
    with pytest.raises(WeightsError, match="(?s)pickled.pt is not a PyTorch checkpoint.*weights_only"):
        load_encoder("vit_test", pickled)
    with pytest.raises(WeightsNotFoundError, match="no weights file"):
        load_encoder("vit_test", tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError):
        load_encoder("vit_test", tmp_path / "absent.pt")
    with pytest.raises(WeightsError, match="not a Hugging Face VJEPA2 folder"):
        load_encoder("vit_test", tmp_path)


def test_hf_folder_checks_without_transformers(models, tmp_path):
    enc, _, pred = models
    folder = save_hf(tmp_path / "hf", encoder=enc, predictor=pred)
    assert_same_weights(load_encoder("vit_test", folder), enc)
    assert_same_weights(load_predictor("vit_test", folder / "model.safetensors"), pred)
    with pytest.raises(WeightsError, match=r"(?s)does not match the config.json.*num_heads: requested 4, file 2"):
        load_encoder(encoder_config("vit_test", num_heads=4), folder)
    with pytest.raises(WeightsError, match=r"img_size: requested 256, file 64"):
        load_predictor(predictor_config("vit_test", img_size=256), folder)
    with pytest.raises(WeightsError, match="no V-JEPA 2-AC predictor"):
        load_ac_predictor("ac_vit_test", folder)
    with pytest.raises(WeightsError, match="holds no classifier weights"):
        load_classifier(folder)
    (folder / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(WeightsError, match="not a VJEPA2 config"):
        load_encoder("vit_test", folder)


def test_legacy_non_zip_checkpoint(models, tmp_path):
    enc = models[0]
    path = tmp_path / "legacy.pt"
    torch.save({"target_encoder": prefixed(enc)}, path, _use_new_zipfile_serialization=False)
    assert_same_weights(load_encoder("vit_test", path), enc)


def test_save_hf_refuses_what_hf_cannot_express(models, tmp_path):
    enc, _, pred = models
    interleaved = VisionTransformer(encoder_config("vit_test", rope_layout="interleaved"))
    with pytest.raises(WeightsError, match="only the tiled RoPE"):
        save_hf(tmp_path / "a", encoder=interleaved)
    with pytest.raises(WeightsError, match=r"(?s)one query and one head.*num_heads=4, HF needs 2"):
        save_hf(tmp_path / "b", encoder=enc, predictor=pred, classifier=probe((3, 4, 6), 15))
    official_probe = AttentiveClassifier(ClassifierConfig(embed_dim=48, num_heads=2, num_classes=5))  # eps 1e-5
    with pytest.warns(UserWarning, match="layer_norm_eps=1e-06 where this probe has norm_eps=1e-05"):
        save_hf(tmp_path / "c", encoder=enc, predictor=pred, classifier=official_probe)
    assert_same_weights(load_classifier(tmp_path / "c", norm_eps=1e-5), official_probe)
