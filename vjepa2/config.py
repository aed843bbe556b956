"""Typed, frozen model configs and the presets named after the official V-JEPA 2 checkpoints.

Presets carry the official names (``vit_large``, ``vit_huge``, ``vit_giant``, ``vit_giant_384``,
``ac_vit_giant``) plus tiny ones for tests. Derive variants with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from vjepa2.errors import UserError

RopeLayout = Literal["tiled", "interleaved"]


def _check_heads(name: str, dim: int, heads: int) -> None:
    if dim % heads:
        raise ValueError(f"{name}: width {dim} is not divisible by num_heads={heads}")


@dataclass(frozen=True)
class EncoderConfig:
    """Video ViT encoder (``src/models/vision_transformer.py``).

    ``img_size`` and ``num_frames`` are nominal: with RoPE the encoder takes its grid from the input.
    ``rope_layout="tiled"`` is the official frequency layout that the released weights need;
    ``"interleaved"`` is the textbook layout (V-JEPA 2.1).
    """

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    img_size: int = 256
    num_frames: int = 16
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_layout: RopeLayout = "tiled"
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        _check_heads("EncoderConfig", self.embed_dim, self.num_heads)
        if self.rope_layout not in ("tiled", "interleaved"):
            raise ValueError(f"rope_layout must be 'tiled' or 'interleaved', got {self.rope_layout!r}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


@dataclass(frozen=True)
class PredictorConfig:
    """Mask-denoising predictor (``src/models/predictor.py``): 12 x 384 x 12 heads in every official config."""

    embed_dim: int = 1024  # encoder width
    pred_dim: int = 384
    out_dim: int | None = None  # output width; None -> embed_dim (other values: e.g. pixel-prediction baselines)
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    num_mask_tokens: int = 10
    zero_init_mask_tokens: bool = True
    patch_size: int = 16
    tubelet_size: int = 2
    img_size: int = 256  # sets the grid (crop / patch) that decodes target positions
    num_frames: int = 64
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_layout: RopeLayout = "tiled"
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        _check_heads("PredictorConfig", self.pred_dim, self.num_heads)


@dataclass(frozen=True)
class ACPredictorConfig:
    """Action-conditioned predictor of V-JEPA 2-AC (``src/models/ac_predictor.py``)."""

    embed_dim: int = 1408  # encoder width
    pred_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    action_dim: int = 7
    state_dim: int = 7
    extrinsics_dim: int = 6
    use_extrinsics: bool = False
    action_scale: float = 1.0  # actions are multiplied by this before the action encoder (1.0: official)
    state_scale: float = 1.0  # states likewise (e.g. 1/64 for pixel coordinates; 1.0: official)
    residual: bool = False  # predict the change: output = input frame + prediction (not official; tiny budgets)
    patch_size: int = 16
    img_size: int = 256  # frames must be encoded at this resolution
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_layout: RopeLayout = "tiled"
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        _check_heads("ACPredictorConfig", self.pred_dim, self.num_heads)

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def cond_tokens(self) -> int:
        """Conditioning tokens per time step: action, state (and extrinsics)."""
        return 3 if self.use_extrinsics else 2


@dataclass(frozen=True)
class ClassifierConfig:
    """Attentive probe (``src/models/attentive_pooler.py``): depth-1 self-attention blocks + 1 cross-attention block.

    ``num_classes`` is one int, or a tuple for a multi-query probe with one head per query (EK100: verb, noun,
    action).
    """

    embed_dim: int = 1024
    num_heads: int = 16
    depth: int = 4
    mlp_ratio: float = 4.0
    num_classes: int | tuple[int, ...] = 174
    qkv_bias: bool = True
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        _check_heads("ClassifierConfig", self.embed_dim, self.num_heads)
        if self.depth < 1:
            raise ValueError(f"ClassifierConfig.depth must be >= 1, got {self.depth}")

    @property
    def heads(self) -> tuple[int, ...]:
        return self.num_classes if isinstance(self.num_classes, tuple) else (self.num_classes,)


ENCODER_PRESETS: dict[str, EncoderConfig] = {
    "vit_large": EncoderConfig(embed_dim=1024, depth=24, num_heads=16),
    "vit_huge": EncoderConfig(embed_dim=1280, depth=32, num_heads=16),
    "vit_giant": EncoderConfig(embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11),
    "vit_giant_384": EncoderConfig(embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11, img_size=384),
    # Not released; sizes for experiments and benchmarks on small machines.
    "vit_small": EncoderConfig(embed_dim=384, depth=12, num_heads=6),
    "vit_base": EncoderConfig(embed_dim=768, depth=12, num_heads=12),
    # Tiny presets for tests and CPU recipes.
    "vit_tiny": EncoderConfig(embed_dim=192, depth=6, num_heads=3, img_size=64, num_frames=8),
    "vit_tiny_p8": EncoderConfig(embed_dim=192, depth=6, num_heads=3, patch_size=8, img_size=64, num_frames=8),
    "vit_test": EncoderConfig(embed_dim=48, depth=2, num_heads=2, img_size=64, num_frames=4),
    # The project's own pretrained model (weights ship in vjepa2/pretrained; docs/vjepa2-tiny.md).
    "vjepa2_tiny": EncoderConfig(embed_dim=192, depth=6, num_heads=3, patch_size=8, img_size=64, num_frames=8),
}

PREDICTOR_PRESETS: dict[str, PredictorConfig] = {
    "vit_large": PredictorConfig(embed_dim=1024),
    "vit_huge": PredictorConfig(embed_dim=1280),
    "vit_giant": PredictorConfig(embed_dim=1408),
    "vit_giant_384": PredictorConfig(embed_dim=1408, img_size=384),
    "vit_small": PredictorConfig(embed_dim=384, pred_dim=192, depth=6, num_heads=6),
    "vit_base": PredictorConfig(embed_dim=768),
    "vit_tiny": PredictorConfig(embed_dim=192, pred_dim=96, depth=4, num_heads=3, img_size=64, num_frames=8),
    "vit_test": PredictorConfig(embed_dim=48, pred_dim=24, depth=2, num_heads=2, img_size=64, num_frames=4),
    "vjepa2_tiny": PredictorConfig(
        embed_dim=192, pred_dim=96, depth=4, num_heads=3, patch_size=8, img_size=64, num_frames=8
    ),
}

AC_PREDICTOR_PRESETS: dict[str, ACPredictorConfig] = {
    "ac_vit_giant": ACPredictorConfig(),
    "ac_vit_tiny": ACPredictorConfig(embed_dim=192, pred_dim=96, depth=4, num_heads=3, img_size=64),
    "ac_vit_test": ACPredictorConfig(embed_dim=48, pred_dim=24, depth=2, num_heads=2, img_size=64),
}


def _lookup(table: dict[str, Any], name: str, kind: str) -> Any:
    if name not in table:
        raise UserError(f"unknown {kind} preset {name!r}; choose one of {sorted(table)}")
    return table[name]


def encoder_config(name: str, **overrides: Any) -> EncoderConfig:
    """The encoder preset ``name`` with field overrides."""
    return replace(_lookup(ENCODER_PRESETS, name, "encoder"), **overrides)


def predictor_config(name: str, **overrides: Any) -> PredictorConfig:
    """The pretraining-predictor preset ``name`` (named after its encoder) with field overrides."""
    return replace(_lookup(PREDICTOR_PRESETS, name, "predictor"), **overrides)


def ac_predictor_config(name: str, **overrides: Any) -> ACPredictorConfig:
    """The action-conditioned predictor preset ``name`` with field overrides."""
    return replace(_lookup(AC_PREDICTOR_PRESETS, name, "AC predictor"), **overrides)


def config_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as a plain dict (for JSON/YAML)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
