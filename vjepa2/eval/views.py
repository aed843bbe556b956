"""Multi-clip x multi-view evaluation inputs (official ``evals/video_classification_frozen``).

- Temporal segments: the video is cut into ``segments`` equal parts and one clip is sampled at the start of each,
  with the official frame-sampling rule (:func:`vjepa2.data.video.sample_indices`) inside its part.
- Spatial views: with one view, the official single-view transform (short side to ``resolution * 256/224``,
  centre crop); with ``views > 1``, the short side is resized to ``resolution`` and ``views`` square crops are
  taken evenly along the long side (``EvalVideoTransform``).

The probe sees the tokens of all segments of a view concatenated (``ClipAggregation``), and its softmax is
averaged over views.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vjepa2.data.transforms import EVAL_RESIZE_RATIO, preprocess
from vjepa2.data.video import IMAGE_EXTENSIONS, VideoReadError, read_video, sample_indices
from vjepa2.errors import UserError


def segment_indices(
    n: int, video_fps: float, frames: int, segments: int, fps: float | None = 4, frame_step: int | None = None
) -> np.ndarray:
    """Frame indices ``[segments, frames]``: one start-of-part clip in each of ``segments`` equal parts of ``n``."""
    if segments < 1:
        raise UserError(f"segments must be >= 1, got {segments}")
    part = max(n // segments, 1)
    idx = [sample_indices(part, video_fps, frames, fps, frame_step) + i * part for i in range(segments)]
    return np.clip(np.stack(idx), 0, n - 1)


def read_segments(
    path: str | Path, frames: int, segments: int = 1, fps: float | None = 4, frame_step: int | None = None
) -> torch.Tensor:
    """uint8 ``[segments, frames, H, W, 3]`` of a video; an image is repeated ``frames`` times in every segment.

    Raises:
        VideoReadError: the file cannot be read (the message names it).
    """
    path = Path(path)
    if segments == 1 or path.suffix.lower() in IMAGE_EXTENSIONS:
        clip = read_video(path, frames, fps, frame_step)  # [T or 1, H, W, 3]
        clip = clip.expand(frames, -1, -1, -1) if clip.shape[0] == 1 else clip
        return clip.unsqueeze(0).expand(segments, -1, -1, -1, -1)
    from vjepa2.data import video  # its decoder helpers: decode many indices in one pass

    try:
        n, video_fps = video._probe(path)
        if n < 1:
            raise VideoReadError(path, "the video stream has no frames")
        idx = segment_indices(n, video_fps, frames, segments, fps, frame_step)
        clip, decoded = video._decode(path, idx.reshape(-1))
        if clip is None:  # the header over-counts: sample from the frames that decode
            idx = segment_indices(max(decoded, 1), video_fps, frames, segments, fps, frame_step)
            clip, _ = video._decode(path, idx.reshape(-1))
    except (video.av.FFmpegError, OSError) as e:
        raise VideoReadError(path, f"{e} (corrupt, truncated or not a video?)") from e
    if clip is None:
        raise VideoReadError(path, "no frame could be decoded")
    return torch.from_numpy(clip).unflatten(0, (segments, frames))


def spatial_views(
    frames: torch.Tensor, resolution: int, views: int = 1, resize_ratio: float = EVAL_RESIZE_RATIO
) -> torch.Tensor:
    """Normalised views ``[views, 3, T, resolution, resolution]`` of uint8 frames ``[T, H, W, 3]``.

    ``resize_ratio`` applies to the single view (official 256/224; 1.0 keeps a frame that is already
    ``resolution`` square as it is, e.g. the synthetic world rendered at the pretraining crop).
    """
    if views < 1:
        raise UserError(f"views must be >= 1, got {views}")
    if views == 1:
        return preprocess(frames, resolution, resize_ratio).unsqueeze(0)
    _, H, W, _ = frames.shape
    side, long = min(H, W), max(H, W)
    step = (long - side) // (views - 1)
    crops = [
        frames[:, i * step : i * step + side] if H > W else frames[:, :, i * step : i * step + side]
        for i in range(views)
    ]
    return torch.stack([preprocess(c, resolution, resize_ratio=1.0) for c in crops])


def clip_views(
    segments: torch.Tensor, resolution: int, views: int = 1, resize_ratio: float = EVAL_RESIZE_RATIO
) -> torch.Tensor:
    """uint8 ``[S, T, H, W, 3]`` -> encoder inputs ``[S * V, 3, T, r, r]`` ordered (segment, view)."""
    return torch.cat([spatial_views(seg, resolution, views, resize_ratio) for seg in segments])


def aggregate_views(tokens: torch.Tensor, segments: int, views: int) -> torch.Tensor:
    """Encoder outputs ``[B * S * V, N, D]`` (ordered video, segment, view) -> probe inputs ``[B, V, S * N, D]``."""
    B = tokens.shape[0] // (segments * views)
    x = tokens.unflatten(0, (B, segments, views))  # [B, S, V, N, D]
    return x.transpose(1, 2).flatten(2, 3)
