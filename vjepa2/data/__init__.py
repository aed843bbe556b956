"""Video in: reading clips with the official frame-sampling rule, and the evaluation transform."""

from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess, resized_shape
from vjepa2.data.video import (
    IMAGE_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoReadError,
    builtin_clip,
    frame_step_for,
    list_media,
    read_video,
    sample_indices,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoReadError",
    "builtin_clip",
    "frame_step_for",
    "list_media",
    "preprocess",
    "read_video",
    "resized_shape",
    "sample_indices",
]
