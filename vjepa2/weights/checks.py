"""Strict state-dict loading with complete error reports and a preset guess from tensor shapes.

Every loader funnels through :func:`load_checked`: keys and shapes are compared against the module first, and
any difference raises :class:`WeightsError` listing *all* missing, unexpected and mis-shaped keys (expected vs
found), followed by what the weights look like (:func:`describe_weights`). Nothing is loaded with
``strict=False``; the only keys ever dropped are the documented leftovers removed by the format readers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vjepa2.config import AC_PREDICTOR_PRESETS, ENCODER_PRESETS, PREDICTOR_PRESETS
from vjepa2.errors import UserError


class WeightsError(UserError):
    """A weights file or folder that cannot be loaded into the requested model."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The weights path does not exist."""


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    """Number of distinct indices ``i`` in keys matching ``pattern`` (a regex with one ``(\\d+)`` group)."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def _shape(sd: Mapping[str, Any], key: str, dim: int) -> int | None:
    value = sd.get(key)
    if not isinstance(value, torch.Tensor) or not -value.ndim <= dim < value.ndim:
        return None
    return int(value.shape[dim])


def _matches(table: Mapping[str, Any], **want: Any) -> list[str]:
    """Preset names whose config fields equal ``want`` (``mlp_hidden`` is compared as ``int(width * ratio)``)."""
    names = []
    for name, cfg in table.items():
        width = cfg.pred_dim if hasattr(cfg, "pred_dim") else cfg.embed_dim
        ok = all(
            (int(width * cfg.mlp_ratio) == v) if f == "mlp_hidden" else getattr(cfg, f) == v for f, v in want.items()
        )
        if ok:
            names.append(name)
    return names


def _verdict(names: list[str]) -> str:
    if not names:
        return "matches no preset"
    return "looks like " + " or ".join(names)


_HEADS_NOTE = "attention heads are not stored in weights, so presets differing only in heads or resolution look alike"


def _describe_encoder(sd: Mapping[str, Any]) -> str:
    width = _shape(sd, "patch_embed.proj.weight", 0)
    depth = _count(sd, r"blocks\.(\d+)\.")
    mlp = _shape(sd, "blocks.0.mlp.fc1.weight", 0)
    tubelet, patch = _shape(sd, "patch_embed.proj.weight", 2), _shape(sd, "patch_embed.proj.weight", 3)
    names = _matches(ENCODER_PRESETS, embed_dim=width, depth=depth, mlp_hidden=mlp, patch_size=patch)
    return (
        f"encoder weights (width {width}, depth {depth}, MLP hidden {mlp}, patch {patch}, tubelet {tubelet}): "
        f"{_verdict(names)} ({_HEADS_NOTE})"
    )


def _describe_predictor(sd: Mapping[str, Any]) -> str:
    enc, width = _shape(sd, "predictor_embed.weight", 1), _shape(sd, "predictor_embed.weight", 0)
    depth = _count(sd, r"predictor_blocks\.(\d+)\.")
    mlp = _shape(sd, "predictor_blocks.0.mlp.fc1.weight", 0)
    tokens = _count(sd, r"mask_tokens\.(\d+)$")
    names = _matches(PREDICTOR_PRESETS, embed_dim=enc, pred_dim=width, depth=depth, mlp_hidden=mlp)
    hint = "" if tokens == 10 else f"; released predictors have 10 mask tokens, this one needs num_mask_tokens={tokens}"
    return (
        f"predictor weights (encoder width {enc}, width {width}, depth {depth}, MLP hidden {mlp}, {tokens} mask "
        f"tokens): {_verdict(names)} ({_HEADS_NOTE}){hint}"
    )


def _describe_ac_predictor(sd: Mapping[str, Any]) -> str:
    enc, width = _shape(sd, "predictor_embed.weight", 1), _shape(sd, "predictor_embed.weight", 0)
    depth = _count(sd, r"predictor_blocks\.(\d+)\.")
    mlp = _shape(sd, "predictor_blocks.0.mlp.fc1.weight", 0)
    action = _shape(sd, "action_encoder.weight", 1)
    names = _matches(AC_PREDICTOR_PRESETS, embed_dim=enc, pred_dim=width, depth=depth, mlp_hidden=mlp)
    return (
        f"action-conditioned predictor weights (encoder width {enc}, width {width}, depth {depth}, MLP hidden {mlp}, "
        f"action dim {action}): {_verdict(names)} ({_HEADS_NOTE})"
    )


def _describe_classifier(sd: Mapping[str, Any]) -> str:
    queries, width = _shape(sd, "pooler.query_tokens", 1), _shape(sd, "pooler.query_tokens", 2)
    blocks = _count(sd, r"pooler\.blocks\.(\d+)\.")
    return f"attentive-probe weights (width {width}, {queries} queries, depth {blocks + 1})"


def describe_weights(sd: Mapping[str, Any]) -> str:
    """One line saying what a state dict (in our naming) holds and which presets it fits, from shapes alone."""
    if "action_encoder.weight" in sd:
        return _describe_ac_predictor(sd)
    if "predictor_embed.weight" in sd:
        return _describe_predictor(sd)
    if "patch_embed.proj.weight" in sd:
        return _describe_encoder(sd)
    if "pooler.query_tokens" in sd:
        return _describe_classifier(sd)
    sample = sorted(sd)[:8]
    return f"weights of no known V-JEPA 2 part ({len(sd)} keys, e.g. {sample})"


def _fmt(shape: Any) -> str:
    return str(tuple(shape))


def mismatch_report(expected: Mapping[str, torch.Tensor], found: Mapping[str, Any]) -> list[str]:
    """Lines listing every missing, unexpected and mis-shaped key (empty when the state dicts agree)."""
    lines: list[str] = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    not_tensor = [k for k in found if k in expected and not isinstance(found[k], torch.Tensor)]
    shapes = [
        f"    {k}: expected {_fmt(v.shape)}, found {_fmt(found[k].shape)}"
        for k, v in expected.items()
        if k in found and isinstance(found[k], torch.Tensor) and found[k].shape != v.shape
    ]
    if shapes:
        lines += [f"  {len(shapes)} shape mismatches (key: expected vs found):", *shapes]
    if missing:
        lines += [f"  {len(missing)} missing keys:", *(f"    {k} {_fmt(expected[k].shape)}" for k in missing)]
    if unexpected:
        lines += [f"  {len(unexpected)} unexpected keys:", *(f"    {k} {_shape_or_type(found[k])}" for k in unexpected)]
    if not_tensor:
        kinds = (f"    {k}: {type(found[k]).__name__}" for k in not_tensor)
        lines += [f"  {len(not_tensor)} keys that are not tensors:", *kinds]
    return lines


def _shape_or_type(value: Any) -> str:
    return _fmt(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def load_checked(module: nn.Module, sd: Mapping[str, Any], *, what: str, source: str) -> nn.Module:
    """Load ``sd`` into ``module`` strictly, or raise :class:`WeightsError` naming ``what``, ``source`` and all issues.

    Args:
        module: the freshly built model.
        sd: state dict in our naming (already converted from the file's layout).
        what: the requested model, e.g. ``"encoder preset 'vit_large'"``.
        source: the file (and key) the weights come from.
    """
    lines = mismatch_report(module.state_dict(), sd)
    if lines:
        raise WeightsError(
            "\n".join([f"cannot load the {what} from {source}:", *lines, f"The file holds {describe_weights(sd)}."])
        )
    module.load_state_dict(dict(sd), strict=True)
    return module


def config_mismatches(want: Any, found: Any, names: tuple[str, ...]) -> list[str]:
    """Lines ``field: preset X, file Y`` for config fields that differ (floats compared with a tolerance)."""
    out = []
    for name in names:
        a, b = getattr(want, name), getattr(found, name)
        same = math.isclose(a, b, rel_tol=1e-6) if isinstance(a, float) or isinstance(b, float) else a == b
        if not same:
            out.append(f"    {name}: requested {a!r}, file {b!r}")
    return out
