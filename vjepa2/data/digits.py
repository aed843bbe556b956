"""scikit-learn's 8x8 handwritten digits with the fixed train/test split that the probes and the mix share."""

from __future__ import annotations

import numpy as np

DIGITS_TRAIN = 1000  # the train split: the first 1000 of a permutation seeded with 0; test: the other 797


def digit_images(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits of the probe split ``split``: uint8 ``[N, 8, 8]`` and labels (fixed seeded split)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("the digits need scikit-learn: pip install 'vjepa2[eval]'") from err

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    if split not in ("train", "test"):
        raise ValueError(f"digits split must be 'train' or 'test', got {split!r}")
    order = order[:DIGITS_TRAIN] if split == "train" else order[DIGITS_TRAIN:]
    return (digits.images[order] * (255 / 16)).astype(np.uint8), digits.target[order]
