"""Official sizes: parameter and state-dict key counts of every preset (built on the meta device)."""

import pytest
import torch

from vjepa2.config import ClassifierConfig, ac_predictor_config, encoder_config, predictor_config
from vjepa2.models import ACPredictor, AttentiveClassifier, Predictor, VisionTransformer


def _count(model: torch.nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in model.parameters()), len(model.state_dict())


@pytest.mark.parametrize(
    ("name", "params", "keys"),
    [
        ("vit_large", 303_885_312, 292),
        ("vit_huge", 631_648_000, 388),
        ("vit_giant", 1_012_173_952, 484),
        ("vit_giant_384", 1_012_173_952, 484),
    ],
)
def test_encoder_presets(name, params, keys):
    with torch.device("meta"):
        model = VisionTransformer(encoder_config(name))
    assert _count(model) == (params, keys)
    if name.startswith("vit_giant"):
        assert model.blocks[0].attn.num_heads == 22 and model.blocks[0].mlp.fc1.out_features == 6144


@pytest.mark.parametrize(("name", "millions"), [("vit_large", 22.1), ("vit_huge", 22.3), ("vit_giant", 22.4)])
def test_predictor_presets(name, millions):
    with torch.device("meta"):
        model = Predictor(predictor_config(name))
    params, keys = _count(model)
    assert round(params / 1e6, 1) == millions and keys == 160
    assert len(model.mask_tokens) == 10


def test_ac_predictor_preset():
    with torch.device("meta"):
        model = ACPredictor(ac_predictor_config("ac_vit_giant"))
    assert _count(model) == (305_220_992, 300)


def test_classifier_sizes():
    with torch.device("meta"):
        model = AttentiveClassifier(ClassifierConfig(embed_dim=1024, num_heads=16, num_classes=174))
    assert len(model.pooler.blocks) == 3
    assert model.pooler.query_tokens.shape == (1, 1, 1024)
    assert model.pooler.blocks[0].norm1.eps == 1e-5


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="vit_large"):
        encoder_config("vit_gigantic")
