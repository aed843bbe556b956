"""Every frame transform in one place: evaluation, pretraining augmentation, and the named clip transforms.

- Evaluation (:func:`preprocess`), as the official single-view eval (``evals/video_classification_frozen/utils.py``)
  and the demo notebook: resize the short side to ``int(resolution * 256 / 224)`` (bilinear, half-pixel centres, no
  antialias, as cv2 on the numpy frames decord returns), centre-crop ``resolution`` x ``resolution``, scale to
  [0, 1] and normalise with the ImageNet statistics. Everything runs in float32 on the input's device.
- Pretraining augmentation (:class:`VideoAugment`, official ``app/vjepa/transforms.py``): one random-resized-crop
  box and one flip decision per clip, shared by every frame, so motion is preserved. The crop is resized with
  bilinear ``F.interpolate`` (``align_corners=False``, no antialias), then the clip is flipped with p = 0.5 and
  normalised with the ImageNet statistics scaled to 0-255, as official. There is no RandAugment, random erasing or
  motion shift: V-JEPA 2 pretraining turns them off. All randomness comes from an explicit
  ``numpy.random.Generator``, so a clip's augmentation is fixed by the generator's seed, independent of workers.
- Named clip transforms of trajectories (:func:`make_clip_transform`): ``"droid"`` reproduces the official DROID
  transform as configured: its random-resized-crop scale of 1.777 never fits in the frame, so every clip gets the
  deterministic fallback, a centred crop with aspect ratio clamped to [0.75, 1.35] (full height x ``round(1.35 H)``
  for 16:9 video), resized bilinearly to ``resolution`` and ImageNet-normalised; ``"resize"`` (whole square sim
  frames) and ``"center"`` (:func:`preprocess` without the 256/224 margin).

Not official: an optional Gaussian blur of every frame (:func:`gaussian_blur`, ``AugmentConfig.blur``, or
``+blur=S`` after a transform's name) for worlds whose objects are a few pixels wide (Two-Rooms' dot), so that a
patch token changes smoothly with an object's distance.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vjepa2.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_RESIZE_RATIO = 256 / 224
MAX_PIXELS = 64_000_000  # per decoded frame
MAX_RESIZED_PIXELS = 16_000_000  # per resized frame (the short side at the crop's scale): bounds the float32 work


def check_frame_size(height: int, width: int, short_side: int) -> None:
    """Raise ValueError for frames whose resize would need unbounded memory (huge, or so elongated that scaling
    the short side to ``short_side`` blows the long side up)."""
    if min(height, width) < 1:
        raise UserError(f"empty frames ({width}x{height} px)")
    if height * width > MAX_PIXELS:
        raise UserError(f"frames of {width}x{height} px: more than {MAX_PIXELS // 10**6} Mpx per frame")
    h, w = resized_shape(height, width, short_side)
    if h * w > MAX_RESIZED_PIXELS:
        raise UserError(
            f"frames of {width}x{height} px: resizing the short side to {short_side} px would make {w}x{h} px "
            f"frames (aspect ratio {max(height, width) / min(height, width):.0f}:1 is too elongated)"
        )


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(H', W')`` with the short side at ``short_side`` and the long side scaled and floored (official rule)."""
    if width < height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def _as_video(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    video = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if video.ndim == 3:
        video = video.unsqueeze(0)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != torch.uint8:
        raise UserError(f"expected uint8 RGB frames [T, H, W, 3], got {video.dtype} {tuple(video.shape)}")
    return video


def preprocess(
    frames: torch.Tensor | np.ndarray,
    resolution: int = 256,
    resize_ratio: float = EVAL_RESIZE_RATIO,
    antialias: bool = False,
    chunk: int = 8,
) -> torch.Tensor:
    """Turn decoded frames into an encoder input.

    Args:
        frames: uint8 RGB ``[T, H, W, 3]`` (or one image ``[H, W, 3]``), torch or numpy.
        resolution: side of the square crop.
        resize_ratio: the short side is first resized to ``int(resolution * resize_ratio)``; 256/224 is the
            official single-view eval, 1.0 resizes the short side straight to ``resolution``.
        antialias: antialias when downscaling (off in the official pipeline).
        chunk: frames resized at once (bounds the float32 working memory).

    Returns:
        float32 ``[3, T, resolution, resolution]``, ImageNet-normalised, on the input's device.
    """
    video = _as_video(frames)
    if resolution < 1 or resize_ratio < 1.0:
        raise UserError(f"need resolution >= 1 and resize_ratio >= 1, got {resolution} and {resize_ratio}")
    T, H, W, _ = video.shape
    check_frame_size(H, W, int(resolution * resize_ratio))
    size = resized_shape(H, W, int(resolution * resize_ratio))
    top, left = int(round((size[0] - resolution) / 2)), int(round((size[1] - resolution) / 2))
    out = torch.empty(3, T, resolution, resolution, dtype=torch.float32, device=video.device)
    for s in range(0, T, chunk):
        x = video[s : s + chunk].permute(0, 3, 1, 2).float()  # [t, 3, H, W]
        if size != (H, W):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
        out[:, s : s + chunk] = x[:, :, top : top + resolution, left : left + resolution].transpose(0, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=out.device).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=out.device).view(3, 1, 1, 1)
    return out.div_(255.0).sub_(mean).div_(std)


# ------------------------------------------------------------------------------------- pretraining augmentation

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


# ------------------------------------------------------------------------------------- named clip transforms

DROID_RATIO = (0.75, 1.35)  # data_aug.random_resize_aspect_ratio of configs/train/vitg16/droid-256px-8f.yaml
ClipTransform = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]


def droid_crop_box(height: int, width: int) -> Box:
    """The official DROID transform's crop: centred, aspect ratio clamped to [0.75, 1.35] (180x320 -> 180x243)."""
    return center_box(height, width, DROID_RATIO)


def _crop_resize_normalize(frames: torch.Tensor, box: Box, resolution: int) -> torch.Tensor:
    x = resized_crop(frames, box, resolution)  # [F, 3, res, res] float, 0-255
    return normalize(x, IMAGENET_MEAN, IMAGENET_STD).transpose(0, 1).contiguous()  # [3, F, res, res]


def droid_transform(frames: torch.Tensor, resolution: int = 256) -> torch.Tensor:
    """Official DROID clip transform: :func:`droid_crop_box`, bilinear resize, ImageNet normalisation.

    Args:
        frames: uint8 ``[F, H, W, 3]``.
        resolution: output side.

    Returns:
        float32 ``[3, F, resolution, resolution]``.
    """
    return _crop_resize_normalize(frames, droid_crop_box(frames.shape[1], frames.shape[2]), resolution)


def resize_transform(frames: torch.Tensor, resolution: int = 256) -> torch.Tensor:
    """Whole frame resized bilinearly to ``resolution`` x ``resolution`` and normalised (for square sim frames).

    Args:
        frames: uint8 ``[F, H, W, 3]``.

    Returns:
        float32 ``[3, F, resolution, resolution]``.
    """
    return _crop_resize_normalize(frames, (0, 0, frames.shape[1], frames.shape[2]), resolution)


def make_clip_transform(transform: str | ClipTransform | None, resolution: int = 256) -> ClipTransform | None:
    """``(uint8 [F, H, W, 3], rng) -> clip`` from a name or a callable.

    Args:
        transform: ``"droid"`` (:func:`droid_transform`), ``"resize"`` (:func:`resize_transform`), ``"center"``
            (short side to ``resolution``, centre crop: :func:`~vjepa2.data.transforms.preprocess`), any of these
            followed by ``+blur=S`` (then a Gaussian blur of sigma ``S`` x ``resolution``, not official: see
            :func:`~vjepa2.data.transforms.gaussian_blur`), a callable taking ``(frames, rng)`` (e.g.
            :class:`~vjepa2.data.transforms.VideoAugment`), or None (raw frames).
        resolution: output side of the named transforms.
    """
    if transform is None or callable(transform):
        return transform
    name, blur = parse_transform(transform)
    fn = functools.partial(_NAMED_TRANSFORMS[name], resolution=resolution)  # picklable, for spawned workers
    return functools.partial(_blurred, fn=fn, sigma=blur * resolution) if blur else fn


def parse_transform(transform: str) -> tuple[str, float]:
    """``"resize+blur=0.2"`` -> ``("resize", 0.2)``; ``"resize"`` -> ``("resize", 0.0)``. ValueError if unknown."""
    name, _, modifier = transform.partition("+")
    blur = 0.0 if not modifier else -1.0
    if modifier.startswith("blur="):
        try:
            blur = float(modifier.removeprefix("blur="))
        except ValueError:
            pass
    if name not in _NAMED_TRANSFORMS or blur < 0:
        raise UserError(
            f"unknown transform {transform!r}; expected one of {sorted(_NAMED_TRANSFORMS)}, optionally followed by "
            "'+blur=S' with S >= 0 (e.g. 'resize+blur=0.2'), a callable or None"
        )
    return name, blur


def _blurred(frames: torch.Tensor, rng: np.random.Generator, fn: ClipTransform, sigma: float) -> torch.Tensor:
    return gaussian_blur(fn(frames, rng), sigma)


def _droid_clip(frames: torch.Tensor, rng: np.random.Generator, resolution: int) -> torch.Tensor:
    return droid_transform(frames, resolution)


def _resize_clip(frames: torch.Tensor, rng: np.random.Generator, resolution: int) -> torch.Tensor:
    return resize_transform(frames, resolution)


def _center_clip(frames: torch.Tensor, rng: np.random.Generator, resolution: int) -> torch.Tensor:
    return preprocess(frames, resolution, resize_ratio=1.0)


_NAMED_TRANSFORMS = {"droid": _droid_clip, "resize": _resize_clip, "center": _center_clip}
