"""Which steps of a trajectory or video make a clip: the official frame step and clip start."""

from __future__ import annotations

import math

import numpy as np

from vjepa2.errors import UserError


def clip_frame_step(video_fps: float, fps: float | None = 4.0, frame_step: int | None = None) -> int:
    """Steps between sampled frames: ``frame_step`` if given, else the official ``ceil(video_fps / fps)``.

    The ratio is rounded to 6 decimals before the ceiling, so e.g. 12 Hz / 4 fps is 3, never 4 by float error.
    """
    if frame_step is not None:
        if int(frame_step) != frame_step or frame_step < 1:
            raise UserError(f"frame_step must be a positive integer, got {frame_step!r}")
        return int(frame_step)
    if fps is None or not fps > 0:
        raise UserError(f"fps must be positive (or give frame_step), got {fps!r}")
    if not (math.isfinite(video_fps) and video_fps > 0):
        raise UserError(f"the trajectory's frame rate is unknown ({video_fps!r}); sample with frame_step instead")
    return max(1, math.ceil(round(video_fps / fps, 6)))


def sample_clip_indices(length: int, frames: int, step: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Step indices of one clip, as the official DROID loader.

    Args:
        length: steps in the trajectory (T).
        frames: frames per clip (F).
        step: steps between frames.
        rng: None for the clip at the start; a generator draws the start uniformly in ``[0, T - F * step)``
            (official: the end in ``[F * step, T)``); a trajectory of exactly ``F * step`` steps starts at 0.

    Returns:
        int64 ``[F]``: ``start + step * arange(F)``.

    Raises:
        ValueError: ``T < F * step``.
    """
    span = frames * step
    if frames < 1 or step < 1:
        raise UserError(f"need frames >= 1 and step >= 1, got {frames} and {step}")
    if length < span:
        raise UserError(f"a clip of {frames} frames every {step} steps needs {span} steps, got {length}")
    start = 0 if rng is None or length == span else int(rng.integers(span, length)) - span
    return np.arange(start, start + span, step, dtype=np.int64)
