"""The pretraining config (``vjepa2 pretrain``): sections model, data, optim, mask, run and v21, validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa2.config import encoder_config
from vjepa2.config_io import check_choices, check_fields
from vjepa2.data.synthetic import WorldConfig
from vjepa2.errors import ConfigError
from vjepa2.masks import OFFICIAL_MASKS, MaskConfig
from vjepa2.train.dense import V21Section


@dataclass(frozen=True)
class ModelSection:
    encoder: str = "vit_large"  # encoder preset
    predictor: str | None = None  # predictor preset (default: the encoder's name)
    rope_layout: Literal["tiled", "interleaved"] | None = None  # None: the encoder preset's layout
    activation_checkpointing: bool = False
    mask_token_per_config: bool = False  # official: every mask config uses mask token 0; True: token i for config i


@dataclass(frozen=True)
class DataSection:
    datasets: tuple[str, ...] = ("synthetic",)  # CSV lists, folders, globs, or "synthetic"
    weights: tuple[float, ...] = ()  # per-dataset mixture weights (default: equal)
    frames: int = 16
    fps: float | None = 4.0
    frame_step: int | None = None
    crop: int = 256
    blur: float = 0.0  # Gaussian blur sigma / crop (not official; for few-pixel objects, e.g. Two-Rooms)
    batch_size: int = 24  # global batch (split over processes)
    mask_group: int = 24  # samples truncated to equal mask lengths together (official: the per-GPU batch)
    num_workers: int = 4
    ipe: int = 300  # iterations per epoch (samples drawn per epoch = ipe * batch_size)
    world: WorldConfig = field(default_factory=WorldConfig)  # the "synthetic" dataset (resolution/frames: crop/frames)


@dataclass(frozen=True)
class OptimSection:
    steps: int = 240_000
    warmup: int = 12_000
    start_lr: float = 1e-4
    lr: float = 5.25e-4
    final_lr: float = 5.25e-4
    schedule: Literal["warmup_cosine", "linear_decay"] = "warmup_cosine"  # linear_decay: the cooldown
    ipe_scale: float = 1.25
    weight_decay: float = 0.04
    final_weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    ema: tuple[float, float] = (0.99925, 0.99925)
    grad_accum: int = 1


@dataclass(frozen=True)
class RunSection:
    out: str = "runs/pretrain"
    seed: int = 239
    dtype: Literal["bf16", "fp32"] = "bf16"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    strategy: Literal["ddp", "fsdp"] = "ddp"  # with several processes
    objective: Literal["jepa", "pixel"] = "jepa"  # pixel: the pixel-reconstruction baseline
    log_every: int = 10
    checkpoint_every: int = 500
    keep_every: int = 0  # also keep step_{k}.pt every k steps (0: off)
    max_minutes: float | None = None  # stop (and checkpoint) after this wall time
    init_from: str | None = None  # start from this checkpoint's weights (cooldown / progressive resolution)
    init_optimizer: bool = True  # with init_from: also load its optimizer state (as the official cooldown)
    tensorboard: bool = False
    progress: bool = True


@dataclass(frozen=True)
class PretrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    masks: tuple[MaskConfig, ...] = OFFICIAL_MASKS
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)
    v21: V21Section = field(default_factory=V21Section)  # V-JEPA 2.1 switches (vjepa2/train/dense.py); off: 2.0

    def __post_init__(self) -> None:
        d, o, r = self.data, self.optim, self.run
        check_choices("model", self.model)
        check_choices("optim", self.optim)
        check_choices("run", self.run)
        check_fields("data", d, ">=1", "frames", "crop", "batch_size", "mask_group", "ipe")
        check_fields("data", d, ">=0", "num_workers", "blur")
        check_fields("data", d, ">0", "fps", "frame_step")
        check_fields("optim", o, ">=1", "steps", "grad_accum")
        check_fields("optim", o, ">=0", "warmup", "start_lr", "lr", "final_lr", "weight_decay", "final_weight_decay")
        check_fields("optim", o, ">0", "ipe_scale", "eps")
        check_fields("optim", o, "[0,1]", "ema", "betas")
        check_fields("run", r, ">=1", "log_every", "checkpoint_every")
        check_fields("run", r, ">=0", "keep_every")
        check_fields("run", r, ">0", "max_minutes")
        if d.batch_size % o.grad_accum:
            raise ConfigError(f"data.batch_size={d.batch_size} is not divisible by optim.grad_accum={o.grad_accum}")
        if not self.masks:
            raise ConfigError("masks: at least one mask config is needed")
        enc = encoder_config(self.model.encoder)
        v = self.v21
        check_fields("v21", v, ">=0", "context_loss", "context_ramp", "image_every")
        check_fields("v21", v, ">=1", "image_blocks")
        if v.deep_supervision and not enc.hierarchical_layers:
            raise ConfigError(
                f"v21.deep_supervision needs an encoder with hierarchical layers, not {self.model.encoder}"
            )
        if v.image_every and not enc.image_tokenizer:
            raise ConfigError(f"v21.image_every needs an encoder with an image tokenizer, not {self.model.encoder}")
        if v.enabled and self.run.objective != "jepa":
            raise ConfigError("the v21 switches apply to run.objective=jepa")
        if d.crop % enc.patch_size or d.frames < enc.tubelet_size:
            raise ConfigError(
                f"data.crop={d.crop} must be a multiple of the patch size {enc.patch_size} and data.frames={d.frames} "
                f"at least the tubelet size {enc.tubelet_size} of model.encoder={self.model.encoder}"
            )
