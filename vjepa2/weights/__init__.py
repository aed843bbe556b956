"""Loading and converting weights: official ``.pt`` checkpoints and Hugging Face VJEPA2 folders.

- :func:`load_encoder`, :func:`load_predictor`, :func:`load_ac_predictor`, :func:`load_classifier`: strict loaders.
- :func:`save_hf` / :func:`save_official`: write either layout (our modules in, files out).
- :func:`hf_to_ours` / :func:`ours_to_hf`: lossless name mapping between the layouts.
"""

from vjepa2.weights.checks import WeightsError, WeightsNotFoundError, describe_weights
from vjepa2.weights.hf import hf_config_dict, hf_configs, read_hf_config, read_hf_weights, save_hf
from vjepa2.weights.hf_keys import hf_to_ours, ours_to_hf
from vjepa2.weights.load import (
    classifier_config_from_weights,
    load_ac_predictor,
    load_classifier,
    load_encoder,
    load_predictor,
)
from vjepa2.weights.official import clean_state_dict, read_checkpoint, save_official, to_official

__all__ = [
    "WeightsError",
    "WeightsNotFoundError",
    "classifier_config_from_weights",
    "clean_state_dict",
    "describe_weights",
    "hf_config_dict",
    "hf_configs",
    "hf_to_ours",
    "load_ac_predictor",
    "load_classifier",
    "load_encoder",
    "load_predictor",
    "ours_to_hf",
    "read_checkpoint",
    "read_hf_config",
    "read_hf_weights",
    "save_hf",
    "save_official",
    "to_official",
]
