"""Evaluation transform: shapes, ImageNet normalisation, centre crop, official resize sizes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess, resized_shape

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: ``[3, T, H, W]`` back to 0..255."""
    return (x * STD + MEAN) * 255


def random_clip(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(("h", "w"), [(48, 64), (64, 48), (40, 40), (300, 20)])
def test_shape_dtype(h, w):
    out = preprocess(random_clip(5, h, w), resolution=32)
    assert out.shape == (3, 5, 32, 32) and out.dtype == torch.float32


def test_constant_colour_maps_to_normalised_constant():
    rgb = (255, 128, 0)
    clip = torch.tensor(rgb, dtype=torch.uint8).expand(3, 40, 56, 3).contiguous()
    out = preprocess(clip, resolution=32)
    expected = (torch.tensor(rgb) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out, expected.view(3, 1, 1, 1).expand_as(out), atol=1e-5, rtol=0)


@pytest.mark.parametrize("wide", [True, False])
def test_centre_crop_takes_the_centre(wide):
    # short side already equals the target: no resize, so the crop is exact; pixel value = position along the long side
    ramp = torch.arange(64, dtype=torch.uint8) * 3
    clip = ramp.view(1, 1, 64, 1).expand(2, 32, 64, 3) if wide else ramp.view(1, 64, 1, 1).expand(2, 64, 32, 3)
    out = to_pixels(preprocess(clip.contiguous(), resolution=32, resize_ratio=1.0))
    centre = (torch.arange(16, 48) * 3.0).view(1, 32) if wide else (torch.arange(16, 48) * 3.0).view(32, 1)
    torch.testing.assert_close(out, centre.expand(3, 2, 32, 32), atol=1e-3, rtol=0)


@pytest.mark.parametrize(("h", "w", "size", "top", "left"), [(48, 64, (36, 48), 2, 8), (64, 48, (48, 36), 8, 2)])
def test_non_square_matches_resize_then_crop(h, w, size, top, left):
    clip = random_clip(3, h, w)
    assert resized_shape(h, w, int(32 * 256 / 224)) == size
    ref = F.interpolate(clip.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", align_corners=False)
    ref = ref[:, :, top : top + 32, left : left + 32].transpose(0, 1)
    torch.testing.assert_close(to_pixels(preprocess(clip, resolution=32)), ref, atol=1e-3, rtol=0)


def test_official_sizes():
    assert int(256 * 256 / 224) == 292
    assert resized_shape(272, 640, 292) == (292, 687)  # bikes.mp4 at the ViT-L eval size
    assert resized_shape(720, 1280, 438) == (438, 778)


def test_numpy_chunks_and_single_image_agree():
    clip = random_clip(9, 30, 50)
    ref = preprocess(clip, resolution=24)
    torch.testing.assert_close(preprocess(clip.numpy(), resolution=24, chunk=2), ref)
    torch.testing.assert_close(preprocess(clip[4], resolution=24), ref[:, 4:5])


def test_antialias_only_changes_downscaling():
    clip = random_clip(1, 96, 96)
    assert not torch.allclose(preprocess(clip, 32, 1.0), preprocess(clip, 32, 1.0, antialias=True))


@pytest.mark.parametrize(
    ("frames", "kwargs"),
    [
        (torch.zeros(2, 8, 8, 3), {}),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), {}),
        (random_clip(1, 8, 8), {"resize_ratio": 0.5}),
    ],
)
def test_errors(frames, kwargs):
    with pytest.raises(ValueError):
        preprocess(frames, resolution=8, **kwargs)
