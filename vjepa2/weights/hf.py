"""Hugging Face VJEPA2 folders (``config.json`` + ``model.safetensors``): reading, config mapping, writing.

A folder written by ``VJEPA2Model.save_pretrained`` / ``VJEPA2ForVideoClassification.save_pretrained`` (or by
:func:`save_hf`) is read without importing ``transformers``. Config fields map to ours as follows:

- encoder: ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``mlp_ratio``, ``layer_norm_eps``,
  ``patch_size``, ``tubelet_size``, ``in_chans``, ``qkv_bias``, ``crop_size`` (img_size), ``frames_per_clip``;
- predictor: ``pred_hidden_size``, ``pred_num_hidden_layers``, ``pred_num_attention_heads``, ``pred_mlp_ratio``,
  ``pred_num_mask_tokens``, ``pred_zero_init_mask_tokens``; ``crop_size`` sets the grid decoding its positions;
- pooler: ``num_pooler_layers`` (our depth - 1), the encoder's heads and ``layer_norm_eps``, MLP ratio 4,
  ``num_labels`` classes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from vjepa2.config import ClassifierConfig, EncoderConfig, PredictorConfig
from vjepa2.outputs import follow_umask
from vjepa2.weights.checks import WeightsError
from vjepa2.weights.hf_keys import ours_to_hf, part_of

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# VJEPA2Config defaults (transformers 5.x), used for fields a config.json omits.
HF_DEFAULTS: dict[str, Any] = {
    "patch_size": 16,
    "crop_size": 256,
    "frames_per_clip": 64,
    "tubelet_size": 2,
    "hidden_size": 1024,
    "in_chans": 3,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "drop_path_rate": 0.0,
    "mlp_ratio": 4.0,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu",
    "initializer_range": 0.02,
    "attention_dropout": 0.0,
    "num_pooler_layers": 3,
    "pred_hidden_size": 384,
    "pred_num_attention_heads": 12,
    "pred_num_hidden_layers": 12,
    "pred_num_mask_tokens": 10,
    "pred_zero_init_mask_tokens": True,
    "pred_mlp_ratio": 4.0,
}
HF_POOLER_MLP_RATIO = 4.0
HF_ROPE_BASE = 10000.0


class HFConfigs(NamedTuple):
    """Our configs for the parts an HF folder describes (``classifier`` is None for a ``VJEPA2Model`` folder)."""

    encoder: EncoderConfig
    predictor: PredictorConfig
    classifier: ClassifierConfig | None


def hf_folder(path: str | Path) -> Path | None:
    """The HF folder ``path`` points at (the folder, or a ``.safetensors`` file inside it), else None."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    return path if path.is_dir() and (path / CONFIG_FILE).is_file() else None


def read_hf_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` merged over :data:`HF_DEFAULTS`; raises :class:`WeightsError` unless ``model_type`` is vjepa2."""
    path = Path(folder) / CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    if not isinstance(raw, dict) or raw.get("model_type") != "vjepa2":
        found = raw.get("model_type") if isinstance(raw, dict) else type(raw).__name__
        raise WeightsError(f"{path} is not a VJEPA2 config (model_type {found!r}, expected 'vjepa2')")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise WeightsError(f"{path}: hidden_act {raw['hidden_act']!r} is not supported (V-JEPA 2 uses exact 'gelu')")
    for key, default in HF_DEFAULTS.items():
        if key in raw and not _same_kind(raw[key], default):
            raise WeightsError(f"{path}: {key} must be {type(default).__name__}-valued, got {raw[key]!r}")
    return {**HF_DEFAULTS, **raw}


def _same_kind(value: Any, default: Any) -> bool:
    """``value`` fits a field whose default is ``default`` (ints, numbers or bools; a patch may be a list)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        items = value if isinstance(value, list) and value else [value]
        return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _weight_files(folder: Path) -> list[Path]:
    if (folder / WEIGHTS_FILE).is_file():
        return [folder / WEIGHTS_FILE]
    if (folder / INDEX_FILE).is_file():
        return _shards(folder / INDEX_FILE)
    files = sorted(p.name for p in folder.iterdir())
    raise WeightsError(f"{folder} has no {WEIGHTS_FILE} or {INDEX_FILE} (found {files})")


def _shards(index: Path) -> list[Path]:
    """The shard files an ``index.json`` names; each must be a file inside the index's folder."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
        if not shards or not all(isinstance(s, str) for s in shards):
            raise ValueError("weight_map names no shard files")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise WeightsError(f"{index}: not a valid safetensors index ({type(err).__name__}: {err})") from err
    folder = index.parent.resolve()
    paths = []
    for shard in shards:
        path = (folder / shard).resolve()
        if folder not in path.parents:
            raise WeightsError(f"{index}: shard {shard!r} lies outside the folder {folder}")
        if not path.is_file():
            raise WeightsError(f"{index}: shard {shard!r} is missing")
        paths.append(path)
    return paths


def read_hf_weights(folder: str | Path, part: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` (or of its shards), on CPU.

    Args:
        folder: an HF VJEPA2 folder.
        part: read only ``"encoder"``, ``"predictor"`` or ``"classifier"`` tensors (plus any key that belongs to
            no part, so that it is reported rather than silently skipped); None reads everything.
    """
    out: dict[str, torch.Tensor] = {}
    for path in _weight_files(Path(folder)):
        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                for key in f.keys():
                    found = part_of(key)
                    if part is None or found is None or found[0] == part:
                        out[key] = f.get_tensor(key)
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise WeightsError(
                f"{path}: not a readable safetensors file (empty, truncated or another format?): {err}"
            ) from err
    return out


def _int_patch(cfg: dict[str, Any]) -> int:
    patch = cfg["patch_size"]
    if isinstance(patch, (list, tuple)):
        if len(set(patch)) != 1:
            raise WeightsError(f"non-square patch_size {patch} is not supported")
        patch = patch[0]
    return int(patch)


def hf_encoder_config(cfg: dict[str, Any]) -> EncoderConfig:
    """Our encoder config from an HF config dict (see :func:`read_hf_config`)."""
    return EncoderConfig(
        embed_dim=cfg["hidden_size"],
        depth=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"],
        mlp_ratio=float(cfg["mlp_ratio"]),
        patch_size=_int_patch(cfg),
        tubelet_size=cfg["tubelet_size"],
        in_chans=cfg["in_chans"],
        img_size=cfg["crop_size"],
        num_frames=cfg["frames_per_clip"],
        qkv_bias=cfg["qkv_bias"],
        norm_eps=float(cfg["layer_norm_eps"]),
    )


def hf_predictor_config(cfg: dict[str, Any]) -> PredictorConfig:
    """Our predictor config from an HF config dict; ``img_size = crop_size`` decodes positions like HF does."""
    return PredictorConfig(
        embed_dim=cfg["hidden_size"],
        pred_dim=cfg["pred_hidden_size"],
        depth=cfg["pred_num_hidden_layers"],
        num_heads=cfg["pred_num_attention_heads"],
        mlp_ratio=float(cfg["pred_mlp_ratio"]),
        num_mask_tokens=cfg["pred_num_mask_tokens"],
        zero_init_mask_tokens=cfg["pred_zero_init_mask_tokens"],
        patch_size=_int_patch(cfg),
        tubelet_size=cfg["tubelet_size"],
        img_size=cfg["crop_size"],
        num_frames=cfg["frames_per_clip"],
        qkv_bias=cfg["qkv_bias"],
        norm_eps=float(cfg["layer_norm_eps"]),
    )


def hf_classifier_config(cfg: dict[str, Any]) -> ClassifierConfig:
    """Our probe config from an HF config dict: HF pooler LayerNorms use ``layer_norm_eps`` (1e-6), not 1e-5."""
    labels = cfg.get("id2label")
    return ClassifierConfig(
        embed_dim=cfg["hidden_size"],
        num_heads=cfg["num_attention_heads"],
        depth=cfg["num_pooler_layers"] + 1,
        mlp_ratio=HF_POOLER_MLP_RATIO,
        num_classes=len(labels) if labels else int(cfg.get("num_labels", 2)),
        qkv_bias=True,
        norm_eps=float(cfg["layer_norm_eps"]),
    )


def hf_configs(folder: str | Path) -> HFConfigs:
    """Our configs for the encoder, predictor and (classification folders only) the probe of an HF folder."""
    cfg = read_hf_config(folder)
    is_cls = "VJEPA2ForVideoClassification" in (cfg.get("architectures") or [])
    return HFConfigs(hf_encoder_config(cfg), hf_predictor_config(cfg), hf_classifier_config(cfg) if is_cls else None)


def _check_saveable(enc: EncoderConfig, pred: PredictorConfig | None, clf: ClassifierConfig | None) -> None:
    problems = []
    for name, cfg in (("encoder", enc), ("predictor", pred)):
        if cfg is not None and (cfg.rope_layout != "tiled" or cfg.rope_base != HF_ROPE_BASE):
            problems.append(f"{name}: HF implements only the tiled RoPE with base 1e4 (got {cfg.rope_layout!r})")
    if pred is not None:
        if getattr(pred, "out_dim", None) not in (None, enc.embed_dim):
            problems.append(f"predictor out_dim={pred.out_dim}: HF projects back to the encoder width {enc.embed_dim}")
        for f in ("embed_dim", "patch_size", "tubelet_size", "qkv_bias", "norm_eps"):
            if getattr(pred, f) != getattr(enc, f):
                problems.append(f"predictor {f}={getattr(pred, f)!r} differs from the encoder's {getattr(enc, f)!r}")
    if clf is not None:
        if isinstance(clf.num_classes, tuple):
            problems.append(f"classifier: HF has one query and one head, not {clf.num_classes}")
        want = {"embed_dim": enc.embed_dim, "num_heads": enc.num_heads, "mlp_ratio": HF_POOLER_MLP_RATIO}
        want["qkv_bias"] = True
        bad = {f: v for f, v in want.items() if getattr(clf, f) != v}
        problems += [f"classifier {f}={getattr(clf, f)!r}, HF needs {v!r}" for f, v in bad.items()]
    if problems:
        raise WeightsError("cannot express these models as a Hugging Face VJEPA2 folder:\n  " + "\n  ".join(problems))


def hf_config_dict(
    encoder: EncoderConfig,
    predictor: PredictorConfig | None = None,
    classifier: ClassifierConfig | None = None,
    labels: list[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """The ``config.json`` dict for our configs (predictor fields default to HF's when ``predictor`` is None)."""
    _check_saveable(encoder, predictor, classifier)
    nominal = predictor if predictor is not None else encoder
    cfg: dict[str, Any] = {
        **HF_DEFAULTS,
        "architectures": ["VJEPA2ForVideoClassification" if classifier is not None else "VJEPA2Model"],
        "model_type": "vjepa2",
        "dtype": str(dtype).removeprefix("torch."),
        "patch_size": encoder.patch_size,
        "crop_size": nominal.img_size,
        "frames_per_clip": nominal.num_frames,
        "tubelet_size": encoder.tubelet_size,
        "hidden_size": encoder.embed_dim,
        "in_chans": encoder.in_chans,
        "num_attention_heads": encoder.num_heads,
        "num_hidden_layers": encoder.depth,
        "mlp_ratio": encoder.mlp_ratio,
        "layer_norm_eps": encoder.norm_eps,
        "qkv_bias": encoder.qkv_bias,
    }
    if predictor is not None:
        cfg.update(
            pred_hidden_size=predictor.pred_dim,
            pred_num_attention_heads=predictor.num_heads,
            pred_num_hidden_layers=predictor.depth,
            pred_num_mask_tokens=predictor.num_mask_tokens,
            pred_zero_init_mask_tokens=predictor.zero_init_mask_tokens,
            pred_mlp_ratio=predictor.mlp_ratio,
        )
    if classifier is not None:
        n = classifier.heads[0]
        labels = labels if labels is not None else [f"LABEL_{i}" for i in range(n)]
        if len(labels) != n:
            raise WeightsError(f"{len(labels)} labels given for a classifier with {n} classes")
        cfg["num_pooler_layers"] = classifier.depth - 1
        cfg["id2label"] = {str(i): name for i, name in enumerate(labels)}
        cfg["label2id"] = {name: i for i, name in enumerate(labels)}
    return cfg


def save_hf(
    folder: str | Path,
    *,
    encoder: nn.Module,
    predictor: nn.Module | None = None,
    classifier: nn.Module | None = None,
    labels: list[str] | None = None,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` that ``transformers`` loads.

    ``VJEPA2Model.from_pretrained(folder)`` loads the result; with a ``classifier`` (one query, one head, the
    encoder's width and heads) it is a ``VJEPA2ForVideoClassification`` folder. Without a ``predictor`` the
    config carries HF's default predictor sizes and ``transformers`` initialises that predictor at random.
    HF's pooler LayerNorms use the encoder's ``layer_norm_eps``: an official probe (eps 1e-5) is saved as is,
    exactly like the official converter does, and a warning says so.

    Args:
        folder: output folder (created).
        encoder: a :class:`~vjepa2.models.VisionTransformer`.
        predictor: a :class:`~vjepa2.models.Predictor`.
        classifier: an :class:`~vjepa2.models.AttentiveClassifier`.
        labels: class names for ``id2label`` (default ``LABEL_i``).
    """
    clf_cfg = classifier.cfg if classifier is not None else None
    dtype = next(encoder.parameters()).dtype
    cfg = hf_config_dict(encoder.cfg, predictor.cfg if predictor is not None else None, clf_cfg, labels, dtype)
    if clf_cfg is not None and clf_cfg.norm_eps != encoder.cfg.norm_eps:
        warnings.warn(
            f"the HF pooler uses layer_norm_eps={encoder.cfg.norm_eps} where this probe has norm_eps="
            f"{clf_cfg.norm_eps}; HF logits will differ slightly (as with the official conversion)",
            stacklevel=2,
        )
    parts = {"encoder": encoder.state_dict()}
    if predictor is not None:
        parts["predictor"] = predictor.state_dict()
    if classifier is not None:
        parts["classifier"] = classifier.state_dict()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ours_to_hf(parts).items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    follow_umask(folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return folder
