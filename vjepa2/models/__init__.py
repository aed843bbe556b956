"""V-JEPA 2 models: encoder, mask-denoising predictor, action-conditioned predictor, attentive probe."""

from vjepa2.models.ac_predictor import ACPredictor, block_causal_mask
from vjepa2.models.encoder import VisionTransformer
from vjepa2.models.predictor import Predictor
from vjepa2.models.probe import AttentiveClassifier, AttentivePooler

__all__ = [
    "ACPredictor",
    "AttentiveClassifier",
    "AttentivePooler",
    "Predictor",
    "VisionTransformer",
    "block_causal_mask",
]
