"""Evaluation transform of V-JEPA 2: short-side resize, centre crop, ImageNet normalisation.

As the official single-view eval (``evals/video_classification_frozen/utils.py``) and the demo notebook: resize the
short side to ``int(resolution * 256 / 224)`` (bilinear, half-pixel centres, no antialias, as cv2 on the numpy frames
decord returns), centre-crop ``resolution`` x ``resolution``, scale to [0, 1] and normalise with the ImageNet
statistics. Everything runs in float32 on the input's device, a few frames at a time.
"""

from __future__ import annotations

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
