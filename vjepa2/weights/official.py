"""Official ``facebookresearch/vjepa2`` checkpoints (``.pt``): reading, key cleaning and writing the same layout.

Layouts handled (see the official spec, section 9):

- pre-training / cooldown: ``encoder``, ``target_encoder``, ``predictor``, keyed ``module.backbone.*``;
- V-JEPA 2-AC: ``encoder`` (+ ``target_encoder``) keyed ``module.*`` and ``predictor`` = the AC predictor;
- probes: ``classifiers``, a list of state dicts keyed ``module.pooler.*`` and ``module.linear.*``, or for the
  EK100 anticipation probe ``module.{verb,noun,action}_classifier.*`` (``action_classifier`` alone when
  action-only).

Our module names already follow the official ones, so reading is prefix stripping; the only keys dropped are
the documented leftovers ``pos_embed`` / ``predictor_pos_embed`` (absolute embeddings unused with RoPE).
Files are always read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa2.models import ACPredictor
from vjepa2.weights.checks import WeightsError, WeightsNotFoundError

IGNORED_KEYS = frozenset({"pos_embed", "predictor_pos_embed"})
_WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")
# EK100 anticipation probe head names, in our ``heads.{i}`` order (verb, noun, action).
EK100_HEADS = ("verb_classifier", "noun_classifier", "action_classifier")


def _load_error_detail(err: Exception) -> str:
    """The informative part of a ``torch.load`` error (the unpickler's reason, not its generic advice)."""
    text = str(err)
    m = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\n\n|$)", text, flags=re.DOTALL)
    if m:
        text = m.group(1).split(" Please use")[0].strip()
    return f"{type(err).__name__}: {text or 'empty or truncated file'}"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The top-level dict of an official ``.pt`` file, loaded on CPU with ``weights_only=True``.

    Raises:
        WeightsNotFoundError: ``path`` does not exist.
        WeightsError: the file is not a checkpoint ``torch.load`` accepts safely, or not a dict.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsNotFoundError(f"no weights file or folder at {path}")
    if path.is_dir():
        raise WeightsError(
            f"{path} is a folder but not a Hugging Face VJEPA2 folder (no config.json); "
            "pass an official .pt file or a folder written by save_pretrained / save_hf"
        )
    try:
        # mmap (zip-format files only) keeps peak memory at one part, not the whole 1B-parameter file
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... depending on the damage
        raise WeightsError(
            f"{path} is not a PyTorch checkpoint that loads with torch.load(weights_only=True), the only way "
            f"vjepa2 reads .pt files (no arbitrary unpickling): {_load_error_detail(err)}"
        ) from err
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    return dict(obj)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def pick_entry(ckpt: Mapping[str, Any], keys: Sequence[str], source: str) -> tuple[str | None, Any]:
    """The first of ``keys`` present in ``ckpt`` as ``(key, value)``; a bare state dict is returned as ``(None, ckpt)``.

    Raises:
        WeightsError: none of ``keys`` is present; the message lists the top-level keys found.
    """
    for key in keys:
        if key in ckpt:
            return key, ckpt[key]
    if _is_state_dict(ckpt):
        return None, ckpt
    wanted = " or ".join(repr(k) for k in keys)
    raise WeightsError(f"{source} has no {wanted} entry; its top-level keys are {sorted(map(str, ckpt))}")


def strip_prefixes(key: str) -> str:
    """``module.backbone.blocks.0...`` -> ``blocks.0...`` (any mix of DDP / wrapper / compile prefixes)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def clean_state_dict(sd: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Official keys -> our keys: strip wrapper prefixes and drop ``pos_embed`` / ``predictor_pos_embed``."""
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{source} is a {type(sd).__name__}, not a state dict")
    out: dict[str, Any] = {}
    for key, value in sd.items():
        clean = strip_prefixes(str(key))
        if clean in IGNORED_KEYS:
            continue
        if clean in out:
            raise WeightsError(f"{source}: two keys become {clean!r} once the 'module.'/'backbone.' prefixes go")
        out[clean] = value
    return out


def classifier_from_official(sd: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One entry of ``classifiers`` -> our :class:`~vjepa2.models.AttentiveClassifier` keys.

    EK100 heads ``verb/noun/action_classifier`` become ``heads.0/1/2``; an action-only probe's
    ``action_classifier`` becomes ``linear``.
    """
    sd = clean_state_dict(sd, source)
    names = {k.split(".", 1)[0] for k in sd}
    if EK100_HEADS[0] in names:
        rename = {name: f"heads.{i}" for i, name in enumerate(EK100_HEADS)}
    else:
        rename = {EK100_HEADS[2]: "linear"}
    out = {}
    for key, value in sd.items():
        head, _, rest = key.partition(".")
        out[f"{rename[head]}.{rest}" if head in rename else key] = value
    return out


def classifier_to_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our classifier keys -> an official ``classifiers`` entry (3 heads are written with the EK100 names)."""
    n_heads = len({k.split(".")[1] for k in sd if k.startswith("heads.")})
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if n_heads == 3 and parts[0] == "heads":
            key = ".".join([EK100_HEADS[int(parts[1])], *parts[2:]])
        out["module." + key] = value
    return out


def to_official(module: nn.Module, prefix: str = "module.backbone.") -> dict[str, torch.Tensor]:
    """A module's state dict with the official wrapper prefix (``module.`` for the AC checkpoint)."""
    return {prefix + k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_official(
    path: str | Path,
    *,
    encoder: nn.Module | None = None,
    predictor: nn.Module | None = None,
    target_encoder: nn.Module | None = None,
    classifiers: Sequence[nn.Module] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write an official-layout checkpoint that the official code (and our loaders) read.

    Args:
        path: output ``.pt`` file.
        encoder: context encoder, written under ``encoder``.
        predictor: a :class:`~vjepa2.models.Predictor` (keys ``module.backbone.*``) or an
            :class:`~vjepa2.models.ACPredictor` (AC layout: every part keyed ``module.*``).
        target_encoder: EMA encoder under ``target_encoder``; defaults to ``encoder``'s weights.
        classifiers: attentive probes, written as the ``classifiers`` list.
        extra: further top-level entries (``epoch``, ``opt``, ...); must be ``weights_only``-loadable.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    prefix = "module." if isinstance(predictor, ACPredictor) else "module.backbone."
    ckpt: dict[str, Any] = dict(extra or {})
    target_encoder = target_encoder if target_encoder is not None else encoder
    if encoder is not None:
        ckpt["encoder"] = to_official(encoder, prefix)
    if target_encoder is not None:
        ckpt["target_encoder"] = to_official(target_encoder, prefix)
    if predictor is not None:
        ckpt["predictor"] = to_official(predictor, prefix)
    if classifiers is not None:
        ckpt["classifiers"] = [classifier_to_official(to_official(c, "")) for c in classifiers]
    if not ckpt:
        raise ValueError("save_official: nothing to save (pass encoder, predictor or classifiers)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path
