"""The stage-2 (V-JEPA 2-AC) training config (``vjepa2 train-ac``): sections model, data, optim and run, validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa2.config_io import check_choices, check_fields
from vjepa2.errors import ConfigError


@dataclass(frozen=True)
class ACModelSection:
    encoder: str = "vit_giant"  # encoder preset
    encoder_weights: str | None = None  # official .pt, HF folder, a pretraining run's latest.pt, or "pretrained"
    # (the preset's weights by name: shipped with the package, e.g. vjepa2_tiny, or the released file)
    encoder_key: str = "target_encoder"
    predictor: str = "ac_vit_giant"  # AC predictor preset (its embed_dim must match the encoder)
    action_scale: float = 1.0  # multiplies actions before the action encoder (1.0: official)
    state_scale: float = 1.0  # multiplies states before the state encoder (1.0: official)
    residual: bool = False  # predictor outputs input frame + change (not official; for small budgets)
    action_dim: int | None = None  # None: from the data (7 for poses, frame step x env action dim otherwise)
    state_dim: int | None = None  # None: from the data; a set value is checked against it


@dataclass(frozen=True)
class ACDataSection:
    trajectories: tuple[str, ...] = ()  # trajectory files or folders (npz/h5), droid:DIR, lerobot:DIR (one kind)
    camera: str | None = None  # droid: left|right|wrist (default left); lerobot: a video key (default the first)
    frames: int = 8
    fps: float | None = 4.0
    frame_step: int | None = None
    resolution: int = 256
    transform: str = "droid"  # droid (official centre-crop quirk) | resize (square simulator frames)
    batch_size: int = 256
    num_workers: int = 4
    cache_features: bool = True


@dataclass(frozen=True)
class ACOptimSection:
    steps: int = 94_500
    warmup: int = 4_500
    anneal: int = 4_500
    start_lr: float = 7.5e-5
    lr: float = 4.25e-4
    final_lr: float = 0.0
    weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    auto_steps: int = 2  # official: rollout frames; 0 and 1 both give the one-step rollout term
    rollout_loss: bool = True  # False: teacher forcing only (the rollout-loss ablation; not official)


@dataclass(frozen=True)
class ACRunSection:
    out: str = "runs/ac"
    seed: int = 0
    dtype: Literal["bf16", "fp32"] = "bf16"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = 10
    checkpoint_every: int = 500
    max_minutes: float | None = None
    progress: bool = True
    tensorboard: bool = False  # also log the metrics to out/tb (needs the `tensorboard` package)


@dataclass(frozen=True)
class ACTrainConfig:
    model: ACModelSection = field(default_factory=ACModelSection)
    data: ACDataSection = field(default_factory=ACDataSection)
    optim: ACOptimSection = field(default_factory=ACOptimSection)
    run: ACRunSection = field(default_factory=ACRunSection)

    def __post_init__(self) -> None:
        d, o, r = self.data, self.optim, self.run
        check_choices("run", self.run)
        check_fields("data", d, ">=1", "frames", "resolution", "batch_size")
        check_fields("data", d, ">=0", "num_workers")
        check_fields("data", d, ">0", "fps", "frame_step")
        check_fields("optim", o, ">=1", "steps")
        check_fields("optim", o, ">=0", "warmup", "anneal", "start_lr", "lr", "final_lr", "weight_decay", "auto_steps")
        check_fields("optim", o, "[0,1]", "betas")
        check_fields("run", r, ">=1", "log_every", "checkpoint_every")
        check_fields("run", r, ">0", "max_minutes")
        if d.frames < 2:
            raise ConfigError(f"config key data.frames: a world model needs >= 2 frames per clip, got {d.frames}")
