"""Action anticipation: the anticipated slot, focal loss, class-mean recall, synthetic labels, an end-to-end probe."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vjepa2.config import encoder_config, predictor_config
from vjepa2.data.synthetic import SyntheticWorld, WorldConfig
from vjepa2.eval.anticipation import (
    VERBS,
    AnticipationConfig,
    class_mean_recall,
    encode_anticipation,
    sigmoid_focal_loss,
    synthetic_anticipation,
    synthetic_labels,
    target_ids,
    train_anticipation,
)
from vjepa2.eval.probe import ProbeConfig
from vjepa2.models import Predictor, VisionTransformer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_target_ids_follow_the_official_slot_rule():
    # official: N + grid^2 * int(anticipation_time * fps / tubelet); 4 context frames = 2 slots of 4x4 tokens
    assert target_ids(4, 2, 2, (4, 4)).tolist() == list(range(48, 64))
    assert target_ids(4, 0, 2, (2, 3)).tolist() == list(range(12, 18))


def test_focal_loss_reduces_to_bce_and_down_weights_easy_examples():
    logits, labels = torch.randn(5, 7), torch.randint(7, (5,))
    bce = F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, 7).float(), reduction="sum")
    torch.testing.assert_close(sigmoid_focal_loss(logits, labels, alpha=-1, gamma=0), bce)
    p = torch.sigmoid(logits[0, labels[0]])
    one = torch.full((1, 7), -50.0)
    one[0, labels[0]] = logits[0, labels[0]]  # negatives nearly certain: only the positive term is left
    expected = -0.25 * (1 - p) ** 2 * torch.log(p)
    torch.testing.assert_close(sigmoid_focal_loss(one, labels[:1]), expected, atol=1e-6, rtol=1e-5)


def test_class_mean_recall_weights_classes_equally():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.7, 0.3, 0.0], [0.0, 0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 2])
    assert class_mean_recall(scores, labels, k=1) == pytest.approx((1 + 0 + 1) / 3)
    assert class_mean_recall(scores, labels, k=2) == 1.0


def test_synthetic_labels_read_the_simulation():
    cfg = AnticipationConfig()
    world = SyntheticWorld(WorldConfig(frames=4, one_mover_prob=1.0, event_horizon=4))
    verbs = []
    for seed in range(300):
        scene = world.scene(seed)
        verb, noun, action = synthetic_labels(scene, cfg)
        window = slice(4, 8)
        assert (verb == 0) == (not scene.collisions[window, 0].any() and not scene.wall_hits[window, 0].any())
        assert noun == scene.labels["appearance"] and action == verb * 12 + noun
        if VERBS[verb] == "bounce_left":
            s = 4 + int(np.argmax(scene.wall_hits[window, 0]))
            assert scene.positions[s, 0, 0] < 32  # hit the left wall: on the left half
        verbs.append(verb)
    assert set(verbs) == set(range(len(VERBS)))  # every event occurs


def test_anticipation_probe_end_to_end():
    cfg = AnticipationConfig(
        probe=ProbeConfig(depth=2, num_heads=4, epochs=40, batch_size=16, lrs=(3e-3,), weight_decays=(0.01,))
    )
    encoder = VisionTransformer(encoder_config("vit_test")).eval()
    predictor = Predictor(predictor_config("vit_test", img_size=64)).eval()
    x_train, y_train = synthetic_anticipation("val", 240, cfg)
    x_test, y_test = synthetic_anticipation("test", 80, cfg)
    assert x_train.shape == (240, 3, 4, 64, 64) and y_train.shape == (240, 3)
    ctx_train, full_train = encode_anticipation(encoder, predictor, x_train, cfg)
    ctx_test, full_test = encode_anticipation(encoder, predictor, x_test, cfg)
    assert ctx_train.shape == (240, 32, 48) and full_train.shape == (240, 48, 48)
    torch.testing.assert_close(full_train[:, :32], ctx_train)
    result = train_anticipation(full_train, y_train, full_test, y_test, cfg.num_classes, cfg.probe)
    assert set(result.recall) == {"verb", "noun", "action"}
    assert result.recall["noun"] > 5 / 12 + 0.15  # the object's appearance is in view: well above chance
