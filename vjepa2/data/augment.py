"""Pretraining clip augmentation (official ``app/vjepa/transforms.py``).

One random-resized-crop box and one flip decision per clip, shared by every frame, so motion is preserved.
The crop is resized with bilinear ``F.interpolate`` (``align_corners=False``, no antialias), then the clip is
flipped with p = 0.5 and normalised with the ImageNet statistics scaled to 0-255, as official. There is no
RandAugment, random erasing or motion shift: V-JEPA 2 pretraining turns them off.

Not official: an optional Gaussian blur of every frame (:func:`gaussian_blur`, ``AugmentConfig.blur``) for worlds
whose objects are a few pixels wide (Two-Rooms' dot), so that a patch token changes smoothly with an object's distance.

All randomness comes from an explicit ``numpy.random.Generator``, so a clip's augmentation is fixed by the
generator's seed and independent of worker processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vjepa2.errors import UserError

Box = tuple[int, int, int, int]  # top, left, height, width


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation of V-JEPA 2 pretraining (``data.crop_size`` and ``data_aug.*`` in the configs).

    Attributes:
        crop: output side in pixels.
        scale: range of the crop's area as a fraction of the frame's area, drawn uniformly.
        ratio: range of the crop's aspect ratio (width / height), drawn log-uniformly.
        flip: flip the whole clip horizontally with probability 0.5.
        mean: per-channel mean in [0, 1] units.
        std: per-channel std in [0, 1] units.
        tries: box draws before falling back to a centre crop.
        blur: Gaussian blur sigma as a fraction of ``crop`` (0: none; not official).
    """

    crop: int = 256
    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (0.75, 1.35)
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tries: int = 10
    blur: float = 0.0

    def __post_init__(self) -> None:
        if self.crop <= 0:
            raise UserError(f"crop must be positive, got {self.crop}")
        if self.blur < 0:
            raise UserError(f"blur must be >= 0, got {self.blur}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise UserError(f"scale must satisfy 0 < low <= high, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise UserError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")


def sample_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
    tries: int = 10,
) -> Box:
    """Draw an Inception-style crop box inside a ``height x width`` frame.

    Returns:
        ``(top, left, h, w)``; after ``tries`` boxes that do not fit, the centre crop of :func:`center_box`.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(tries):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    return center_box(height, width, ratio)


def center_box(height: int, width: int, ratio: tuple[float, float]) -> Box:
    """Largest centred box whose aspect ratio is clamped into ``ratio`` (the fallback of :func:`sample_crop_box`)."""
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(clip: torch.Tensor, box: Box, size: int) -> torch.Tensor:
    """Crop every frame to ``box`` and resize bilinearly to ``size x size``.

    Args:
        clip: ``[T, H, W, 3]`` uint8 or float.

    Returns:
        ``[T, 3, size, size]`` float32.
    """
    top, left, h, w = box
    x = clip[:, top : top + h, left : left + w].permute(0, 3, 1, 2).float()  # [T, 3, h, w]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian ``[2 * ceil(3 sigma) + 1]`` (at least 3 taps)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of the last two dims of ``x`` ``[..., H, W]``; ``sigma`` in pixels (0: a no-op).

    The kernel is renormalised at the borders, so a constant image stays constant (and blurring commutes with a
    per-channel affine normalisation).
    """
    if sigma <= 0:
        return x
    *lead, H, W = x.shape
    k = gaussian_kernel(sigma).to(x)
    pad = len(k) // 2
    kh, kw = k.view(1, 1, -1, 1), k.view(1, 1, 1, -1)

    def smooth(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh, padding=(pad, 0)), kw, padding=(0, pad))

    ones = torch.ones(1, 1, H, W, dtype=x.dtype, device=x.device)
    return (smooth(x.reshape(-1, 1, H, W)) / smooth(ones)).view(*lead, H, W)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Normalise 0-255 values ``[T, 3, H, W]`` with statistics given in [0, 1] units (scaled by 255, as official)."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1) * 255.0
    return (x - m) / s


def augment_clip(clip: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Random resized crop, horizontal flip, optional blur and normalisation with one set of parameters per clip.

    Args:
        clip: ``[T, H, W, 3]`` uint8 frames.
        cfg: augmentation settings.
        rng: source of every random draw (crop box first, then the flip).

    Returns:
        ``[3, T, crop, crop]`` float32.
    """
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise UserError(f"expected a [T, H, W, 3] clip, got shape {tuple(clip.shape)}")
    box = sample_crop_box(clip.shape[1], clip.shape[2], cfg.scale, cfg.ratio, rng, cfg.tries)
    x = resized_crop(clip, box, cfg.crop)  # [T, 3, crop, crop]
    if cfg.flip and rng.random() < 0.5:
        x = x.flip(-1)
    x = gaussian_blur(x, cfg.blur * cfg.crop)
    return normalize(x, cfg.mean, cfg.std).permute(1, 0, 2, 3).contiguous()  # [3, T, crop, crop]


class VideoAugment:
    """Callable ``(clip [T, H, W, 3] uint8, rng) -> [3, T, crop, crop]`` float32 for :class:`VideoClipDataset`."""

    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        self.cfg = cfg or AugmentConfig()

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return augment_clip(clip, self.cfg, rng)

    def __repr__(self) -> str:
        return f"VideoAugment({self.cfg})"
