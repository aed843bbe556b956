"""Probe core: views and segments, the probe grid learns, view averaging, baselines, probe data sources, caching."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from vjepa2.data.video import sample_indices
from vjepa2.eval.baselines import knn_probe, linear_probe, pool
from vjepa2.eval.cache import cached_features
from vjepa2.eval.data import ClipSpec, DigitsSource, FileSource, load_source
from vjepa2.eval.features import encode_source, load_frozen_encoder
from vjepa2.eval.probe import ProbeConfig, build_probe, predict, topk_accuracy, train_probes
from vjepa2.eval.views import aggregate_views, segment_indices, spatial_views

pytestmark = pytest.mark.usefixtures("one_thread")


def separable_tokens(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``[n, 2 views, 6, 16]``: noise plus, in one random token, a class-specific direction."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    protos = torch.randn(classes, 16, generator=torch.Generator().manual_seed(99)) * 3
    x = torch.randn(n, 2, 6, 16, generator=g)
    slot = torch.randint(6, (n,), generator=g)
    x[torch.arange(n), :, slot] += protos[labels][:, None]
    return x, labels


def test_segment_indices_cover_the_video_in_order():
    idx = segment_indices(n=120, video_fps=30, frames=4, segments=3, fps=None, frame_step=2)
    assert idx.shape == (3, 4)
    assert idx[0, 0] == 0 and idx[1, 0] == 40 and idx[2, 0] == 80  # each part's clip starts at the part
    first = sample_indices(40, 30, frames=4, fps=None, frame_step=2)  # the official rule inside each part
    assert (idx == first + np.array([[0], [40], [80]])).all()
    short = segment_indices(n=10, video_fps=30, frames=8, segments=2, fps=None, frame_step=2)
    assert short.min() >= 0 and short.max() <= 9


def test_spatial_views_crop_along_the_long_side():
    frames = torch.zeros(2, 32, 96, 3, dtype=torch.uint8)
    frames[:, :, :32], frames[:, :, 64:] = 255, 128  # left third white, right third grey
    views = spatial_views(frames, resolution=16, views=3)
    assert views.shape == (3, 3, 2, 16, 16)
    means = views.mean(dim=(1, 2, 3, 4))
    assert means[0] > means[2] > means[1]  # left (white) > right (grey) > centre (black)
    assert spatial_views(frames, 16, 1).shape == (1, 3, 2, 16, 16)


def test_aggregate_views_concatenates_segments_per_view():
    tokens = torch.arange(2 * 2 * 3).float().view(12, 1, 1).expand(12, 5, 4)  # (video, segment, view) order
    out = aggregate_views(tokens, segments=2, views=3)
    assert out.shape == (2, 3, 10, 4)
    assert out[1, 2, :5, 0].eq(6 + 2).all() and out[1, 2, 5:, 0].eq(6 + 3 + 2).all()


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_attentive_probe_grid_learns_a_separable_task(dtype):
    x, y = separable_tokens(256, 4, seed=0)
    xt, yt = separable_tokens(128, 4, seed=1)
    lrs, wds = (3e-3, 1e-5), (0.01,)
    cfg = ProbeConfig(depth=2, num_heads=4, epochs=20, batch_size=32, lrs=lrs, weight_decays=wds, dtype=dtype)
    result = train_probes(x, y, xt, yt, 4, cfg)
    assert set(result.accuracies) == {(3e-3, 0.01), (1e-5, 0.01)}
    assert result.accuracy == max(result.accuracies.values()) and result.head == (3e-3, 0.01)
    assert result.accuracy > 0.9 and result.top5 == 1.0  # chance: 0.25


def test_predict_averages_the_softmax_over_views():
    x, _ = separable_tokens(5, 3, seed=0)
    probe = build_probe(16, 3, ProbeConfig(depth=2, num_heads=4))
    probs = predict(probe, x)
    with torch.no_grad():
        expected = torch.stack([probe(x[:, v]).softmax(-1) for v in range(2)]).mean(0)
    torch.testing.assert_close(probs, expected)
    assert predict(probe, x[:, 0]).shape == (5, 3)  # [N, tokens, D]: one view
    assert topk_accuracy(torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.0, 0.1]]), torch.tensor([2, 0]), k=1) == 0.5


def test_linear_and_knn_baselines_learn_pooled_features():
    x, y = separable_tokens(200, 4, seed=0)
    xt, yt = separable_tokens(100, 4, seed=1)
    acc, wd = linear_probe(pool(x), y, pool(xt), yt, 4)
    assert acc > 0.9 and wd > 0
    assert knn_probe(pool(x), y, pool(xt), yt, 4, k=10) > 0.8


def _image(path, value: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 48, 3), value, np.uint8)).save(path)
    return path


def test_file_sources_csv_and_class_folders(tmp_path):
    for name, value in [("cat", 10), ("dog", 200)]:
        for i in range(2):
            _image(tmp_path / "train" / name / f"{i}.png", value)
    _image(tmp_path / "val" / "dog" / "0.png", 200)
    train = FileSource(str(tmp_path / "train"))
    assert train.classes == ["cat", "dog"] and train.labels.tolist() == [0, 0, 1, 1]
    val = load_source(str(tmp_path / "val"), classes=train.classes)
    assert val.labels.tolist() == [1]  # the train folder's class order, though val has only "dog"
    _image(tmp_path / "val" / "cow" / "0.png", 5)
    with pytest.raises(ValueError, match="cow"):
        load_source(str(tmp_path / "val"), classes=train.classes)
    (tmp_path / "list.csv").write_text("train/cat/0.png 0\ntrain/dog/0.png 3\n")
    csv = load_source(str(tmp_path / "list.csv"))
    assert csv.labels.tolist() == [0, 3] and len(csv.classes) == 4
    clip = csv.segments(1, ClipSpec(frames=4, segments=2))
    assert clip.shape == (2, 4, 40, 48, 3) and clip.float().mean() == 200  # an image: repeated frames
    (tmp_path / "bad.csv").write_text("train/cat/0.png\n")
    with pytest.raises(ValueError, match="bad.csv"):
        load_source(str(tmp_path / "bad.csv"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_source(str(tmp_path / "nowhere"))


def test_synthetic_and_digits_sources():
    spec = ClipSpec(frames=4, segments=2, resolution=64)
    syn = load_source("synthetic:appearance:val:6", spec)
    assert len(syn) == 6 and len(syn.classes) == 12 and syn.segments(0, spec).shape == (2, 4, 64, 64, 3)
    with pytest.raises(ValueError, match="unknown synthetic task"):
        load_source("synthetic:colourfulness:val:2", spec)
    with pytest.raises(ValueError, match="SPLIT:N"):
        load_source("synthetic:direction", spec)
    digits = DigitsSource("test", n=5)
    assert len(digits) == 5 and digits.classes == [str(i) for i in range(10)]
    assert digits.segments(0, spec).shape == (2, 4, 64, 64, 3)
    assert len(load_source("digits:train")) == 1000 and len(load_source("digits:test")) == 797


def test_features_are_encoded_once_and_cached(tmp_path):
    encoder = load_frozen_encoder("vit_test", None)
    spec = ClipSpec(frames=4, resolution=32, segments=2, views=1, resize_ratio=1.0)
    source = load_source("synthetic:count:val:3", ClipSpec(frames=4, resolution=64, segments=2))
    calls = []

    def compute():
        calls.append(1)
        return encode_source(encoder, source, spec, out_layers=[0, 1], batch_size=2)

    feats = cached_features(tmp_path / "f.pt", compute)
    assert feats.shape == (3, 1, 2 * 2 * 2 * 4, 48) and feats.dtype == torch.float16  # S x L x 8 tokens
    again = cached_features(tmp_path / "f.pt", compute)
    assert len(calls) == 1 and torch.equal(feats, again)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_cross_block_fc2_is_rescaled_as_the_official_init(depth):
    """Official ``_rescale_blocks``: fc2 of the cross block / sqrt(2 * (last block id + 1)); depth 1 -> sqrt(2)."""
    from vjepa2.config import ClassifierConfig
    from vjepa2.models.probe import AttentivePooler

    cfg = ClassifierConfig(embed_dim=64, num_heads=4, depth=depth, num_classes=3)
    torch.manual_seed(0)
    pooler = AttentivePooler(cfg)
    std = pooler.cross_attention_block.mlp.fc2.weight.std().item()
    assert std == pytest.approx(0.02 / math.sqrt(2.0 * max(depth - 1, 1)), rel=0.05)
