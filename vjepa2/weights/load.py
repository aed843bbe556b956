"""Public loaders: build a model from a preset (or config) and fill it from an official ``.pt``, an HF folder, or not.

``weights`` may be an official checkpoint file, a Hugging Face VJEPA2 folder (or its ``model.safetensors``), or
None for the official random initialisation. Loading is strict: the preset must fit the file (keys, shapes and,
for HF folders, the config's heads and sizes) or a :class:`~vjepa2.weights.checks.WeightsError` lists every
difference and says which preset the file looks like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vjepa2.config import (
    ACPredictorConfig,
    ClassifierConfig,
    EncoderConfig,
    PredictorConfig,
    ac_predictor_config,
    encoder_config,
    predictor_config,
)
from vjepa2.models import ACPredictor, AttentiveClassifier, Predictor, VisionTransformer
from vjepa2.weights.checks import WeightsError, config_mismatches, describe_weights, load_checked, mismatch_report
from vjepa2.weights.hf import (
    hf_classifier_config,
    hf_encoder_config,
    hf_folder,
    hf_predictor_config,
    read_hf_config,
    read_hf_weights,
)
from vjepa2.weights.hf_keys import hf_to_ours
from vjepa2.weights.hub import RELEASES, fetch, hf_snapshot, release
from vjepa2.weights.official import classifier_from_official, clean_state_dict, pick_entry, read_checkpoint
from vjepa2.weights.packaged import PACKAGED, packaged_path, read_packaged

_ENCODER_FIELDS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "tubelet_size", "in_chans")
_ENCODER_FIELDS += ("qkv_bias", "norm_eps")
_PREDICTOR_FIELDS = ("embed_dim", "pred_dim", "depth", "num_heads", "mlp_ratio", "num_mask_tokens", "patch_size")
_PREDICTOR_FIELDS += ("tubelet_size", "qkv_bias", "norm_eps", "img_size")
OFFICIAL_PROBE_HEADS = 16  # num_heads of every official probe config
OFFICIAL_PROBE_EPS = 1e-5  # nn.LayerNorm default in the official pooler


def _resolve(preset: Any, cls: type, lookup: Any, kind: str) -> tuple[Any, str]:
    """``(config, description)`` for a preset name or a config instance."""
    if isinstance(preset, cls):
        return preset, f"{kind} ({preset})"
    if isinstance(preset, str):
        return lookup(preset), f"{kind} preset {preset!r}"
    raise TypeError(f"preset must be a preset name or a {cls.__name__}, got {type(preset).__name__}")


def _hf_part(folder: Path, part: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``(config dict, our state dict of part, source description)`` from an HF folder."""
    source = f"Hugging Face folder {folder}"
    cfg = read_hf_config(folder)
    sd = hf_to_ours(read_hf_weights(folder, part), source)[part]
    if not sd:
        raise WeightsError(f"{source} holds no {part} weights")
    return cfg, sd, source


def _check_hf_config(want: Any, found: Any, fields: tuple[str, ...], what: str, source: str) -> None:
    lines = config_mismatches(want, found, fields)
    if lines:
        raise WeightsError("\n".join([f"the {what} does not match the config.json of {source}:", *lines]))


def _official_part(path: str | Path, keys: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """Our state dict of the first of ``keys`` in an official checkpoint, and its source description."""
    used, entry = pick_entry(read_checkpoint(path), keys, str(path))
    source = f"{path} (entry {used!r})" if used else f"{path} (a bare state dict)"
    return clean_state_dict(entry, source), source


def _named(preset: Any, weights: Any, pretrained: bool) -> tuple[Any, Any, str | None, dict[str, Any] | None]:
    """Resolve the by-name spellings into ``(preset, weights, key, packaged parts)``.

    ``"hf:REPO"`` fetches a Hugging Face repository (its config gives the preset); ``pretrained=True`` takes the
    weights that ship with the package (``vjepa2_tiny``) or downloads the released file of the preset.
    """
    if isinstance(preset, str) and preset.startswith("hf:"):
        if weights is not None or pretrained:
            raise WeightsError(f"{preset} names its weights; do not also pass weights or pretrained=True")
        return None, hf_snapshot(preset[3:]), None, None
    if not pretrained:
        return preset, weights, None, None
    if weights is not None:
        raise WeightsError(f"give either weights ({weights}) or pretrained=True, not both")
    if not isinstance(preset, str):
        raise WeightsError("pretrained=True needs a preset name, e.g. 'vit_large' or 'vjepa2_tiny'")
    if preset in PACKAGED:
        path = packaged_path(preset)
        parts, _ = read_packaged(path)
        return preset, path, None, {part: (sd, f"packaged weights {path}") for part, sd in parts.items()}
    rel = release(preset)
    return rel.encoder or rel.preset, fetch(preset), rel.key, None


def _encoder_from_weights(sd: Mapping[str, Any], source: str) -> EncoderConfig:
    """The encoder preset whose shapes an official state dict has (2.1 when it holds ``patch_embed_img``)."""
    from vjepa2.config import ENCODER_PRESETS

    def fits(cfg: EncoderConfig) -> bool:
        with torch.device("meta"):
            model = VisionTransformer(cfg)
        return not mismatch_report(model.state_dict(), sd)

    for cfg in ENCODER_PRESETS.values():
        if fits(cfg):
            return cfg
    raise WeightsError(f"{source}: no encoder preset fits these weights; {describe_weights(sd)}")


def load_encoder(
    preset: str | EncoderConfig | None = None,
    weights: str | Path | None = None,
    key: str | None = None,
    pretrained: bool = False,
) -> VisionTransformer:
    """The encoder ``preset`` with weights from an official ``.pt``, an HF folder, by name, or random.

    Args:
        preset: a name from :data:`vjepa2.config.ENCODER_PRESETS`, an :class:`EncoderConfig`, ``"hf:REPO"`` (a
            Hugging Face repository, e.g. ``hf:facebook/vjepa2-vitl-fpc64-256``), or None to read it from the
            weights (an HF folder's ``config.json``, or the shapes of an official file).
        weights: official checkpoint, HF VJEPA2 folder, or None (random, unless ``pretrained``).
        key: checkpoint entry to read; default the preset's ``checkpoint_key``: ``"target_encoder"`` (the EMA
            encoder, as the official evals use) for 2.0 models, which falls back to ``"encoder"`` when absent (the
            AC checkpoint holds both, identical); ``"ema_encoder"`` (ViT-B/L) or ``"target_encoder"`` (ViT-g/G) for
            V-JEPA 2.1 models, never falling back (``encoder`` is the student there). A file holding a bare
            state dict is read as is. Ignored for HF folders, which hold one encoder.
        pretrained: the weights of ``preset`` by name: shipped with the package (``vjepa2_tiny``) or the
            released official file, downloaded once into the torch hub cache (:mod:`vjepa2.weights.hub`).

    Returns:
        A :class:`VisionTransformer` mapping ``[B, 3, T, H, W]`` clips to ``[B, N, D]`` features.
    """
    preset, weights, named_key, packaged = _named(preset, weights, pretrained)
    key = key or named_key
    if packaged is not None:
        cfg, what = _resolve(preset, EncoderConfig, encoder_config, "encoder")
        return load_checked(VisionTransformer(cfg), packaged["encoder"][0], what=what, source=packaged["encoder"][1])
    if weights is None:
        if preset is None:
            raise WeightsError("load_encoder needs a preset name, weights, or both")
        return VisionTransformer(_resolve(preset, EncoderConfig, encoder_config, "encoder")[0])
    folder = hf_folder(weights)
    if folder is not None:
        hf_cfg, sd, source = _hf_part(folder, "encoder")
        found = hf_encoder_config(hf_cfg)
        cfg, what = (
            (found, f"encoder ({source}'s config.json)")
            if preset is None
            else _resolve(preset, EncoderConfig, encoder_config, "encoder")
        )
        _check_hf_config(cfg, found, _ENCODER_FIELDS, what, source)
    elif preset is None:
        sd, source = _official_part(weights, (key,) if key else ("target_encoder", "ema_encoder", "encoder"))
        cfg = _encoder_from_weights(sd, source)
        what = f"encoder (preset read from {source})"
    else:
        cfg, what = _resolve(preset, EncoderConfig, encoder_config, "encoder")
        key = key or cfg.checkpoint_key
        fallback = key == "target_encoder" and not cfg.hierarchical_layers  # 2.0 only
        sd, source = _official_part(weights, (key, "encoder") if fallback else (key,))
    return load_checked(VisionTransformer(cfg), sd, what=what, source=source)


def load_predictor(
    preset: str | PredictorConfig, weights: str | Path | None = None, pretrained: bool = False
) -> Predictor:
    """The pre-training predictor ``preset`` (named after its encoder) from the ``predictor`` entry or HF folder.

    For an HF folder the preset's ``img_size`` must equal the folder's ``crop_size``, which sets the grid that
    decodes target positions (e.g. ``vit_giant_384`` for ``vjepa2-vitg-fpc64-384``). ``pretrained=True`` takes the
    packaged or released weights of ``preset``, as :func:`load_encoder` does.
    """
    preset, weights, _, packaged = _named(preset, weights, pretrained)
    cfg, what = _resolve(preset, PredictorConfig, predictor_config, "predictor")
    model = Predictor(cfg)
    if packaged is not None:
        return load_checked(model, packaged["predictor"][0], what=what, source=packaged["predictor"][1])
    if weights is None:
        return model
    folder = hf_folder(weights)
    if folder is not None:
        hf_cfg, sd, source = _hf_part(folder, "predictor")
        _check_hf_config(cfg, hf_predictor_config(hf_cfg), _PREDICTOR_FIELDS, what, source)
    else:
        sd, source = _official_part(weights, ("predictor",))
    return load_checked(model, sd, what=what, source=source)


def load_ac_predictor(
    preset: str | ACPredictorConfig, weights: str | Path | None = None, pretrained: bool = False
) -> ACPredictor:
    """The V-JEPA 2-AC predictor ``preset`` from the ``predictor`` entry of ``vjepa2-ac-vitg.pt`` (or random);
    ``pretrained=True`` downloads that file once (``load_ac_predictor("ac_vit_giant", pretrained=True)``)."""
    if pretrained:
        if weights is not None:
            raise WeightsError(f"give either weights ({weights}) or pretrained=True, not both")
        weights = fetch(preset)
    cfg, what = _resolve(preset, ACPredictorConfig, ac_predictor_config, "AC predictor")
    model = ACPredictor(cfg)
    if weights is None:
        return model
    if hf_folder(weights) is not None:
        raise WeightsError(f"{weights} is a Hugging Face folder; transformers has no V-JEPA 2-AC predictor")
    sd, source = _official_part(weights, ("predictor",))
    return load_checked(model, sd, what=what, source=source)


def _indices(sd: Mapping[str, Any], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.match(k))})


def classifier_config_from_weights(
    sd: Mapping[str, Any], num_heads: int = OFFICIAL_PROBE_HEADS, norm_eps: float = OFFICIAL_PROBE_EPS
) -> ClassifierConfig:
    """Infer the probe config (width, depth, queries, classes, MLP ratio) from our-named probe weights.

    Heads and LayerNorm eps are invisible in weights: they default to the official probes' 16 and 1e-5.
    """
    if "pooler.query_tokens" not in sd or "pooler.cross_attention_block.mlp.fc1.weight" not in sd:
        raise WeightsError(f"not attentive-probe weights: the file holds {describe_weights(sd)}")
    queries, width = sd["pooler.query_tokens"].shape[1:]
    heads = _indices(sd, r"heads\.(\d+)\.weight")
    if heads:
        num_classes: int | tuple[int, ...] = tuple(int(sd[f"heads.{i}.weight"].shape[0]) for i in heads)
    elif "linear.weight" in sd:
        num_classes = int(sd["linear.weight"].shape[0])
    else:
        raise WeightsError(f"probe weights without a linear head (keys: {sorted(sd)})")
    n_heads = len(num_classes) if isinstance(num_classes, tuple) else 1
    if n_heads != queries:
        raise WeightsError(f"probe has {queries} query tokens but {n_heads} classification heads")
    if width % num_heads:
        raise WeightsError(f"probe width {width} is not divisible by num_heads={num_heads}; pass num_heads=")
    return ClassifierConfig(
        embed_dim=int(width),
        num_heads=num_heads,
        depth=len(_indices(sd, r"pooler\.blocks\.(\d+)\.")) + 1,
        mlp_ratio=sd["pooler.cross_attention_block.mlp.fc1.weight"].shape[0] / width,
        num_classes=num_classes,
        qkv_bias="pooler.cross_attention_block.xattn.q.bias" in sd,
        norm_eps=norm_eps,
    )


def _official_classifier(path: str | Path, index: int) -> tuple[dict[str, Any], str]:
    used, entry = pick_entry(read_checkpoint(path), ("classifiers",), str(path))
    if isinstance(entry, (list, tuple)):
        if not -len(entry) <= index < len(entry):
            raise WeightsError(f"{path}: classifier index {index} out of range; 'classifiers' holds {len(entry)}")
        entry, source = entry[index], f"{path} (classifiers[{index}] of {len(entry)})"
    else:
        source = f"{path} (entry {used!r})" if used else f"{path} (a bare state dict)"
    return classifier_from_official(entry, source), source


def load_classifier(
    weights: str | Path, *, index: int = 0, num_heads: int | None = None, norm_eps: float | None = None
) -> AttentiveClassifier:
    """An attentive probe whose sizes (width, depth, queries, classes) are read from its weights.

    Args:
        weights: an official probe ``.pt`` (``classifiers`` list, incl. the 3-query EK100 probe whose
            verb/noun/action heads become ``heads.0/1/2``), an HF ``VJEPA2ForVideoClassification`` folder, or the
            name of a released probe (``"ssv2-vitl-16x2x3"``, ...: downloaded once, see ``vjepa2 weights list``).
        index: which entry of the official ``classifiers`` list (the official evals train several heads).
        num_heads: attention heads (default: 16 for official probes, the config's for HF folders). HF runs its
            pooler with the encoder's heads, so HF's ViT-g classifiers use 22 where the official ViT-g probes were
            trained with 16: pass ``num_heads=16`` to reproduce the official probe instead of ``transformers``.
        norm_eps: LayerNorm eps (default: 1e-5 for official probes, HF ``layer_norm_eps`` for HF folders, so
            that logits match ``transformers``).

    Returns:
        An :class:`AttentiveClassifier` mapping tokens ``[B, N, D]`` to logits ``[B, C]`` (a list for EK100).
    """
    if not Path(str(weights)).exists() and any(r.preset == weights and r.kind == "probe" for r in RELEASES):
        weights = fetch(str(weights))  # a released probe by name, e.g. "ssv2-vitl-16x2x3"
    folder = hf_folder(weights)
    if folder is not None:
        hf_cfg, sd, source = _hf_part(folder, "classifier")
        cfg = hf_classifier_config(hf_cfg)
        overrides = {"num_heads": num_heads, "norm_eps": norm_eps}
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    else:
        sd, source = _official_classifier(weights, index)
        cfg = classifier_config_from_weights(
            sd,
            num_heads if num_heads is not None else OFFICIAL_PROBE_HEADS,
            norm_eps if norm_eps is not None else OFFICIAL_PROBE_EPS,
        )
    return load_checked(AttentiveClassifier(cfg), sd, what=f"classifier ({cfg})", source=source)
