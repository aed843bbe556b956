"""Loading and converting weights: official .pt checkpoints and Hugging Face VJEPA2 folders."""

from __future__ import annotations

from pathlib import Path

from vjepa2.config import ac_predictor_config, encoder_config, predictor_config
from vjepa2.models import ACPredictor, Predictor, VisionTransformer

# Placeholder loaders (random init only); the weights work fills in the `weights=` path.


def load_encoder(preset: str, weights: str | Path | None = None, key: str = "target_encoder") -> VisionTransformer:
    """The encoder preset ``preset``, with weights from an official .pt, a HF folder, or random (None)."""
    if weights is not None:
        raise NotImplementedError
    return VisionTransformer(encoder_config(preset))


def load_predictor(preset: str, weights: str | Path | None = None) -> Predictor:
    if weights is not None:
        raise NotImplementedError
    return Predictor(predictor_config(preset))


def load_ac_predictor(preset: str, weights: str | Path | None = None) -> ACPredictor:
    if weights is not None:
        raise NotImplementedError
    return ACPredictor(ac_predictor_config(preset))
