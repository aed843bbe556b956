"""vjepa2: V-JEPA 2 in one package.

Understand (exact encoders that load the official and Hugging Face weights, video features from any file),
predict (self-supervised mask-denoising pretraining) and plan (the action-conditioned world model V-JEPA 2-AC).
Importing the package has no side effects; heavy submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_encoder": "vjepa2.weights",
    "load_predictor": "vjepa2.weights",
    "load_ac_predictor": "vjepa2.weights",
    "load_classifier": "vjepa2.weights",
    "read_video": "vjepa2.data.video",
    "preprocess": "vjepa2.data.transforms",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vjepa2' has no attribute {name!r}")
