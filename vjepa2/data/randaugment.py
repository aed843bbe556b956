"""Probe-training augmentation of the official frozen evals: RandAugment, random resized crop, random erasing.

As configured in ``evals/video_classification_frozen`` (``make_dataloader`` -> ``VideoTransform``) and
``evals/action_anticipation_frozen``, in this order:

1. RandAugment ``rand-m7-n4-mstd0.5-inc1`` on the uint8 frames: 4 ops drawn with replacement from the 15 "increasing"
   ops (auto-contrast, equalize, invert, rotate, posterize, solarize, solarize-add, colour, contrast, brightness,
   sharpness, shear x / y, translate x / y), each applied with probability 0.5 at a magnitude drawn from
   N(7, 0.5) clipped to [0, 10]; one set of parameters per clip, shared by every frame (as the official video
   RandAugment, which applies each op to the list of frames). Geometric ops fill with grey 128, bicubic.
2. ImageNet normalisation, then one random-resized-crop box per clip (area scale (0.08, 1), aspect (3/4, 4/3)),
   resized bilinearly to the probe resolution.
3. Horizontal flip with p = 0.5 only where configured (EK100; the classification probes turn it off).
4. Random erasing p = 0.25 in "cube" pixel mode: one box (area 2-33 %, aspect 0.3-3.3) for all frames, filled with
   standard-normal noise.

Our own implementation in torch (no PIL, no timm); randomness from one ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize, sample_crop_box
from vjepa2.errors import UserError

MAX_LEVEL = 10.0
FILL = 128.0
OPS = (
    "auto_contrast", "equalize", "invert", "rotate", "posterize", "solarize", "solarize_add",
    "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
)  # fmt: skip


@dataclass(frozen=True)
class ProbeAugmentConfig:
    """Training augmentation of the probes (off by default: features are then cached once).

    Attributes:
        enabled: augment the training clips (features are then computed on the fly every epoch).
        scale: random-resized-crop area range (fraction of the frame).
        ratio: random-resized-crop aspect-ratio range (width / height).
        randaug_ops: RandAugment ops per clip (0: no RandAugment).
        randaug_magnitude: RandAugment mean magnitude (0-10).
        randaug_std: std of the per-op magnitude.
        erase_prob: random-erasing probability (0: none).
        flip: flip the clip horizontally with p = 0.5 (EK100 only, officially).
        seed: seed of the augmentation draws (item ``i`` of epoch ``e`` uses ``(seed, e, i)``).
    """

    enabled: bool = False
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    randaug_ops: int = 4
    randaug_magnitude: float = 7.0
    randaug_std: float = 0.5
    erase_prob: float = 0.25
    flip: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise UserError(f"augment.scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise UserError(f"augment.ratio must satisfy 0 < low <= high, got {self.ratio}")
        if self.randaug_ops < 0 or not 0 <= self.randaug_magnitude <= MAX_LEVEL or self.randaug_std < 0:
            raise UserError(
                "augment.randaug_ops must be >= 0, randaug_magnitude in [0, 10] and randaug_std >= 0, got "
                f"{self.randaug_ops}, {self.randaug_magnitude}, {self.randaug_std}"
            )
        if not 0 <= self.erase_prob <= 1:
            raise UserError(f"augment.erase_prob must be in [0, 1], got {self.erase_prob}")


# ------------------------------------------------------------------------------------------------- RandAugment


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (PIL "L" weights) ``[T, 1, H, W]`` of float frames ``[T, 3, H, W]``."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (other + factor * (x - other)).clamp(0, 255)


def _sharpen_ref(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (3x3, centre weight 5, sum 13) inside the frame, the border unchanged."""
    k = torch.ones(3, 3, dtype=x.dtype)
    k[1, 1] = 5
    k = (k / 13).expand(3, 1, 3, 3)
    out = x.clone()
    out[..., 1:-1, 1:-1] = F.conv2d(x, k, groups=3)
    return out


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL-style histogram equalisation of every frame and channel of ``[T, 3, H, W]`` (0-255 floats)."""
    T, C, H, W = x.shape
    flat = x.round().long().clamp(0, 255).reshape(T * C, H * W)
    hist = torch.zeros(T * C, 256, dtype=torch.long).scatter_add_(1, flat, torch.ones_like(flat))
    last = hist.gather(1, (hist > 0).long().cumsum(1).argmax(1, keepdim=True))  # count of the brightest value
    step = (H * W - last) // 255  # [T*C, 1]
    lut = (hist.cumsum(1) - hist + step // 2) // step.clamp(min=1)
    lut = lut.clamp(0, 255)
    out = lut.gather(1, flat).float()
    keep = (step == 0).expand_as(out)
    return torch.where(keep, flat.float(), out).view(T, C, H, W)


def _affine(x: torch.Tensor, m: tuple[float, float, float, float, float, float]) -> torch.Tensor:
    """PIL ``AFFINE`` transform: output pixel (x, y) takes the input at ``(a x + b y + c, d x + e y + f)``.

    Bicubic, grey fill outside the frame; ``x`` is ``[T, 3, H, W]`` 0-255 floats.
    """
    T, _, H, W = x.shape
    a, b, c, d, e, f = m
    ys, xs = torch.meshgrid(torch.arange(H, dtype=x.dtype) + 0.5, torch.arange(W, dtype=x.dtype) + 0.5, indexing="ij")
    sx, sy = a * xs + b * ys + c, d * xs + e * ys + f
    grid = torch.stack([2 * sx / W - 1, 2 * sy / H - 1], dim=-1).expand(T, H, W, 2)
    out = F.grid_sample(x - FILL, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    return (out + FILL).clamp(0, 255)


def _signed(v: float, rng: np.random.Generator) -> float:
    return -v if rng.random() > 0.5 else v


def apply_op(x: torch.Tensor, op: str, level: float, rng: np.random.Generator) -> torch.Tensor:
    """One RandAugment op at ``level`` (0-10) on every frame of ``x`` ``[T, 3, H, W]`` (0-255 floats)."""
    H, W = x.shape[-2:]
    frac = level / MAX_LEVEL
    if op == "auto_contrast":
        lo, hi = x.amin((-2, -1), keepdim=True), x.amax((-2, -1), keepdim=True)
        scale = torch.where(hi > lo, 255 / (hi - lo).clamp(min=1e-6), torch.ones_like(hi))
        return torch.where(hi > lo, (x - lo) * scale, x)
    if op == "equalize":
        return _equalize(x)
    if op == "invert":
        return 255 - x
    if op == "posterize":  # increasing: fewer bits kept at higher levels
        bits = 4 - int(frac * 4)
        q = 2 ** (8 - bits)
        return torch.div(x.round(), q, rounding_mode="floor") * q
    if op == "solarize":  # increasing: lower threshold at higher levels
        thresh = 256 - int(frac * 256)
        return torch.where(x >= thresh, 255 - x, x)
    if op == "solarize_add":
        add = int(frac * 110)
        return torch.where(x < 128, (x + add).clamp(max=255), x)
    if op in ("color", "contrast", "brightness", "sharpness"):  # increasing: 1 +- 0.9 * frac
        factor = 1.0 + _signed(frac * 0.9, rng)
        if op == "color":
            other = _gray(x).expand_as(x)
        elif op == "contrast":
            other = _gray(x).mean((-3, -2, -1), keepdim=True).expand_as(x)
        elif op == "brightness":
            other = torch.zeros_like(x)
        else:
            other = _sharpen_ref(x)
        return _blend(x, other, factor)
    if op == "rotate":
        angle = math.radians(_signed(frac * 30.0, rng))
        cos, sin = math.cos(angle), math.sin(angle)
        cx, cy = W / 2, H / 2  # rotate about the centre (counter-clockwise for positive angles, as PIL)
        return _affine(x, (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy))
    if op == "shear_x":
        return _affine(x, (1, _signed(frac * 0.3, rng), 0, 0, 1, 0))
    if op == "shear_y":
        return _affine(x, (1, 0, 0, _signed(frac * 0.3, rng), 1, 0))
    if op == "translate_x":
        return _affine(x, (1, 0, _signed(frac * 0.45, rng) * W, 0, 1, 0))
    if op == "translate_y":
        return _affine(x, (1, 0, 0, 0, 1, _signed(frac * 0.45, rng) * H))
    raise UserError(f"unknown RandAugment op {op!r}; ops: {OPS}")


def rand_augment(
    x: torch.Tensor, rng: np.random.Generator, num_ops: int = 4, magnitude: float = 7.0, std: float = 0.5
) -> torch.Tensor:
    """RandAugment of a clip ``[T, 3, H, W]`` (0-255 floats): ``num_ops`` ops drawn with replacement, each applied
    with p = 0.5 at a magnitude ``N(magnitude, std)`` clipped to [0, 10]; the same draws for every frame."""
    for name in rng.choice(len(OPS), size=num_ops, replace=True):
        if rng.random() > 0.5:
            continue
        level = float(np.clip(rng.normal(magnitude, std) if std > 0 else magnitude, 0, MAX_LEVEL))
        x = apply_op(x, OPS[int(name)], level, rng).round()
    return x


# --------------------------------------------------------------------------------------------- random erasing


def random_erase(
    x: torch.Tensor,
    rng: np.random.Generator,
    prob: float = 0.25,
    area: tuple[float, float] = (0.02, 1 / 3),
    min_aspect: float = 0.3,
    tries: int = 100,
) -> torch.Tensor:
    """With probability ``prob``, fill one box (the same in every frame) of ``x`` ``[3, T, H, W]`` with N(0, 1) noise.

    Returns ``x`` itself (modified in place) or unchanged.
    """
    if rng.random() >= prob:
        return x
    _, T, H, W = x.shape
    log_r = (math.log(min_aspect), math.log(1 / min_aspect))
    for _ in range(tries):
        target = rng.uniform(*area) * H * W
        aspect = math.exp(rng.uniform(*log_r))
        h, w = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if w < W and h < H:
            top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            x[:, :, top : top + h, left : left + w] = torch.randn(3, T, h, w, generator=gen, dtype=x.dtype)
            break
    return x


# --------------------------------------------------------------------------------------------- the whole chain


def probe_augment(
    clip: torch.Tensor, resolution: int, cfg: ProbeAugmentConfig, rng: np.random.Generator
) -> torch.Tensor:
    """The official probe-training transform of one clip.

    Args:
        clip: uint8 ``[T, H, W, 3]``.
        resolution: output side.
        cfg: augmentation settings.
        rng: source of every random draw.

    Returns:
        float32 ``[3, T, resolution, resolution]``, ImageNet-normalised.
    """
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != torch.uint8:
        raise UserError(f"probe_augment expects uint8 [T, H, W, 3], got {clip.dtype} {tuple(clip.shape)}")
    x = clip.permute(0, 3, 1, 2).float()  # [T, 3, H, W], 0-255
    if cfg.randaug_ops:
        x = rand_augment(x, rng, cfg.randaug_ops, cfg.randaug_magnitude, cfg.randaug_std)
    top, left, h, w = sample_crop_box(x.shape[-2], x.shape[-1], cfg.scale, cfg.ratio, rng)
    x = F.interpolate(x[..., top : top + h, left : left + w], size=(resolution, resolution), mode="bilinear")
    if cfg.flip and rng.random() < 0.5:
        x = x.flip(-1)
    x = normalize(x, IMAGENET_MEAN, IMAGENET_STD).transpose(0, 1).contiguous()  # [3, T, r, r]
    return random_erase(x, rng, cfg.erase_prob) if cfg.erase_prob > 0 else x
