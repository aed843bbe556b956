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
    ``rope_layout="tiled"`` is the official frequency layout that the 2.0 weights need; ``"interleaved"`` is the
    textbook layout (V-JEPA 2.1). The V-JEPA 2.1 options (``app/vjepa_2_1``), all off for 2.0 models:
    ``image_tokenizer`` (a 1-frame patch embedding ``patch_embed_img`` for single-frame inputs),
    ``modality_embedding`` (learned ``img_mod_embed`` / ``video_mod_embed`` added after the patch embedding),
    ``rope_grid`` (row and column positions rescaled to this pre-training grid: ``h * (G - 1) / (H_p - 1)``) and
    ``hierarchical_layers`` (one LayerNorm per listed block, ``norms_block``, in place of the final ``norm``).
    ``checkpoint_key`` is the entry of the official file that holds this encoder.
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
    image_tokenizer: bool = False
    modality_embedding: bool = False
    rope_grid: int | None = None
    hierarchical_layers: tuple[int, ...] = ()
    checkpoint_key: str = "target_encoder"

    def __post_init__(self) -> None:
        _check_heads("EncoderConfig", self.embed_dim, self.num_heads)
        if self.rope_layout not in ("tiled", "interleaved"):
            raise ValueError(f"rope_layout must be 'tiled' or 'interleaved', got {self.rope_layout!r}")
        layers = self.hierarchical_layers
        if layers and (list(layers) != sorted(set(layers)) or layers[0] < 0 or layers[-1] != self.depth - 1):
            raise ValueError(f"hierarchical_layers {layers} must ascend and end at the last block {self.depth - 1}")
        if self.rope_grid is not None and self.rope_grid < 2:
            raise ValueError(f"rope_grid must be >= 2 (or None), got {self.rope_grid}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


@dataclass(frozen=True)
class PredictorConfig:
    """Mask-denoising predictor (``src/models/predictor.py``): 12 x 384 x 12 heads in every official 2.0 config.

    The V-JEPA 2.1 options (``app/vjepa_2_1/models/predictor.py``) are off for 2.0 models: ``levels``,
    ``modality_embedding`` and ``return_context``; 2.1 predictors have 8 mask tokens and ``out_dim`` = levels x the
    teacher's width.
    """

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
    levels: int = 1  # 2.1: encoder levels concatenated at the input (4 for ViT-g/G); > 1 embeds with an MLP
    modality_embedding: bool = False  # 2.1: img_mod_embed / video_mod_embed added after sorting
    return_context: bool = False  # 2.1: also project the context tokens (predictor_proj_context)

    def __post_init__(self) -> None:
        _check_heads("PredictorConfig", self.pred_dim, self.num_heads)
        if self.levels < 1:
            raise ValueError(f"PredictorConfig.levels must be >= 1, got {self.levels}")


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


V21: dict[str, Any] = {  # the V-JEPA 2.1 architecture switches shared by every 2.1 encoder
    "rope_layout": "interleaved",
    "image_tokenizer": True,
    "modality_embedding": True,
    "rope_grid": 16,
}
V21_PREDICTOR: dict[str, Any] = {
    "pred_dim": 384,
    "num_heads": 12,
    "num_mask_tokens": 8,
    "img_size": 384,
    "num_frames": 64,
    "rope_layout": "interleaved",
    "modality_embedding": True,
    "return_context": True,
}

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
    # V-JEPA 2.1 (app/vjepa_2_1, hub names of src/hub/backbones.py): 384 px, interleaved RoPE rescaled to 16 x 16.
    **{
        f"vjepa2_1_vit_{name}_384": EncoderConfig(
            embed_dim=d, depth=depth, num_heads=heads, mlp_ratio=mlp, img_size=384, num_frames=64, **V21, **extra
        )
        for name, d, depth, heads, mlp, extra in (
            ("base", 768, 12, 12, 4.0, {"hierarchical_layers": (2, 5, 8, 11), "checkpoint_key": "ema_encoder"}),
            ("large", 1024, 24, 16, 4.0, {"hierarchical_layers": (5, 11, 17, 23), "checkpoint_key": "ema_encoder"}),
            ("giant", 1408, 40, 22, 48 / 11, {"hierarchical_layers": (9, 19, 29, 39)}),
            ("gigantic", 1664, 48, 26, 64 / 13, {"hierarchical_layers": (11, 23, 37, 47)}),
        )
    },
    "vjepa2_1_vit_test": EncoderConfig(
        embed_dim=48, depth=4, num_heads=2, img_size=64, num_frames=4, hierarchical_layers=(0, 1, 2, 3), **V21
    ),
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
    # V-JEPA 2.1: B/L distilled from ViT-G (one level, the teacher's 1664-d features), g/G on their own 4 levels.
    "vjepa2_1_vit_base_384": PredictorConfig(embed_dim=768, depth=12, out_dim=1664, **V21_PREDICTOR),
    "vjepa2_1_vit_large_384": PredictorConfig(embed_dim=1024, depth=12, out_dim=1664, **V21_PREDICTOR),
    "vjepa2_1_vit_giant_384": PredictorConfig(embed_dim=1408, depth=24, levels=4, out_dim=4 * 1408, **V21_PREDICTOR),
    "vjepa2_1_vit_gigantic_384": PredictorConfig(embed_dim=1664, depth=24, levels=4, out_dim=4 * 1664, **V21_PREDICTOR),
    "vjepa2_1_pretrain": PredictorConfig(embed_dim=1024, depth=24, **V21_PREDICTOR),  # train_2_1 configs: 24 x 384
    "vjepa2_1_vit_test": PredictorConfig(
        embed_dim=48,
        pred_dim=24,
        depth=2,
        num_heads=2,
        num_mask_tokens=8,
        img_size=64,
        num_frames=4,
        levels=4,
        out_dim=4 * 48,
        rope_layout="interleaved",
        modality_embedding=True,
        return_context=True,
    ),  # fmt: skip
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
