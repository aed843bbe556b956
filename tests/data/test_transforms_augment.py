import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vjepa2.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    augment_clip,
    center_box,
    gaussian_blur,
    sample_crop_box,
)


def _clip(t=4, h=24, w=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(("h", "w"), [(48, 64), (64, 48), (30, 200), (9, 9)])
def test_crop_box_within_bounds(h, w):
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, bh, bw = sample_crop_box(h, w, (0.3, 1.0), (0.75, 1.35), rng)
        assert 0 < bh <= h and 0 < bw <= w and 0 <= top <= h - bh and 0 <= left <= w - bw


def test_crop_box_area_and_ratio():
    rng = np.random.default_rng(1)
    for _ in range(300):
        _, _, bh, bw = sample_crop_box(480, 640, (0.3, 1.0), (0.75, 1.35), rng)
        # rounding to whole pixels moves area and ratio by well under 1%
        assert 0.3 * 0.99 <= bh * bw / (480 * 640) <= 1.0
        assert 0.75 * 0.99 <= bw / bh <= 1.35 * 1.01


def test_crop_box_fallback_is_centre_crop():
    rng = np.random.default_rng(0)
    # an area above the frame's never fits: after 10 tries, the centre crop with the ratio clamped
    assert sample_crop_box(40, 100, (2.0, 3.0), (0.75, 1.35), rng) == center_box(40, 100, (0.75, 1.35))
    assert center_box(40, 100, (0.75, 1.35)) == (0, 23, 40, 54)  # too wide: full height, width 40 * 1.35
    assert center_box(100, 40, (0.75, 1.35)) == (23, 0, 53, 40)  # too tall: full width, height 40 / 0.75
    assert center_box(40, 48, (0.75, 1.35)) == (0, 0, 40, 48)  # ratio 1.2 inside the range: whole frame


def test_output_shape_dtype_and_determinism():
    cfg = AugmentConfig(crop=16)
    clip = _clip()
    a = augment_clip(clip, cfg, np.random.default_rng(3))
    b = augment_clip(clip, cfg, np.random.default_rng(3))
    assert a.shape == (3, 4, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, augment_clip(clip, cfg, np.random.default_rng(4)))


def test_same_crop_for_every_frame():
    cfg = AugmentConfig(crop=16)
    frame = _clip(t=1)
    for seed in range(5):
        out = augment_clip(frame.expand(6, -1, -1, -1), cfg, np.random.default_rng(seed))
        assert all(torch.equal(out[:, 0], out[:, t]) for t in range(1, 6))
        # and each frame is what the same draws give that frame alone
        assert torch.allclose(out[:, :1], augment_clip(frame, cfg, np.random.default_rng(seed)))


def test_resize_is_bilinear_interpolate_of_the_crop():
    cfg = AugmentConfig(crop=10, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    clip = _clip(t=2, h=24, w=24)  # a square frame with area 1 and ratio 1: the box is the whole frame
    out = augment_clip(clip, cfg, np.random.default_rng(0))
    ref = F.interpolate(clip.permute(0, 3, 1, 2).float(), size=(10, 10), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    torch.testing.assert_close(out, ((ref - mean) / std).permute(1, 0, 2, 3))


def test_flip_half_of_the_time():
    clip = _clip(t=2)
    on, off = AugmentConfig(crop=12), AugmentConfig(crop=12, flip=False)
    flipped = 0
    for seed in range(200):
        a = augment_clip(clip, on, np.random.default_rng(seed))
        b = augment_clip(clip, off, np.random.default_rng(seed))  # same crop: the flip is drawn after the box
        if torch.equal(a, b.flip(-1)):
            flipped += 1
        else:
            assert torch.equal(a, b)
    assert 70 <= flipped <= 130


def test_imagenet_normalisation():
    cfg = AugmentConfig(crop=8)
    mean = torch.tensor(IMAGENET_MEAN) * 255
    std = torch.tensor(IMAGENET_STD) * 255
    for target, value in ((0.0, mean), (1.0, mean + std)):
        clip = value.round().to(torch.uint8).expand(2, 12, 12, 3)
        out = augment_clip(clip, cfg, np.random.default_rng(0))
        expected = (value.round() - mean) / std  # exactly 0 / 1 up to the uint8 rounding
        torch.testing.assert_close(out, expected.view(3, 1, 1, 1).expand_as(out))
        assert torch.allclose(out, torch.full_like(out, target), atol=0.01)


def test_config_validation():
    with pytest.raises(ValueError, match="scale"):
        AugmentConfig(scale=(0.5, 0.3))
    with pytest.raises(ValueError, match="ratio"):
        AugmentConfig(ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="clip"):
        augment_clip(torch.zeros(4, 8, 8, dtype=torch.uint8), AugmentConfig(crop=4), np.random.default_rng(0))
    with pytest.raises(ValueError, match="blur"):
        AugmentConfig(blur=-0.1)
    assert math.isclose(AugmentConfig().ratio[1], 1.35)


def test_gaussian_blur_matches_scipy_and_keeps_constants():
    ndimage = pytest.importorskip("scipy.ndimage")
    img = torch.zeros(2, 33, 33)
    img[0, 16, 16], img[1, 10, 20] = 1.0, 5.0
    out = gaussian_blur(img, 2.0)
    ref = torch.from_numpy(ndimage.gaussian_filter(img.double().numpy(), (0, 2.0, 2.0), mode="constant", truncate=3.0))
    inner = (slice(None), slice(7, -7), slice(7, -7))  # beyond the kernel radius (6) from every border
    torch.testing.assert_close(out[inner].double(), ref[inner], atol=1e-6, rtol=1e-5)
    const = torch.full((3, 9, 9), 0.7)
    torch.testing.assert_close(gaussian_blur(const, 3.0), const)  # renormalised at the borders
    assert gaussian_blur(img, 0.0) is img


def test_blur_commutes_with_normalisation_in_augment_clip():
    clip = _clip(t=2, h=20, w=20)
    plain = augment_clip(clip, AugmentConfig(crop=16), np.random.default_rng(3))
    blurred = augment_clip(clip, AugmentConfig(crop=16, blur=0.25), np.random.default_rng(3))  # same crop and flip
    torch.testing.assert_close(blurred, gaussian_blur(plain, 4.0), atol=1e-4, rtol=1e-4)
    assert blurred.std() < 0.5 * plain.std()
