"""The video-QA run config: frozen dataclasses, read with the training loader (defaults <- YAML <- key=value)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa2.config_io import check_choices, check_fields
from vjepa2.errors import ConfigError
from vjepa2.qa.synthetic import QUESTION_TYPES


@dataclass(frozen=True)
class DataConfig:
    """The synthetic QA benchmark: clips simulated per split (questions are balanced, so fewer are kept)."""

    train_clips: int = 3000
    test_clips: int = 600
    frames: int = 8
    resolution: int = 64
    types: tuple[str, ...] = QUESTION_TYPES
    formats: tuple[str, ...] = ("mc", "open")
    mc_options: int = 4
    cache_dir: str = "runs/qa/cache"  # encoder features, keyed on the encoder weights, world and seeds

    def __post_init__(self) -> None:
        check_fields("data", self, ">=1", "train_clips", "test_clips", "frames", "resolution")
        if self.mc_options < 2:
            raise ConfigError(f"config key data.mc_options: must be >= 2, got {self.mc_options}")
        unknown = [t for t in self.types if t not in QUESTION_TYPES]
        if unknown or not self.types:
            raise ConfigError(f"config key data.types: {unknown or '[]'} not a non-empty subset of {QUESTION_TYPES}")
        if not self.formats or any(f not in ("mc", "open") for f in self.formats):
            raise ConfigError(f"config key data.formats: {list(self.formats)} is not a subset of ['mc', 'open']")


@dataclass(frozen=True)
class EncoderConfig:
    """The frozen video encoder: a preset with its packaged/released weights, a file, or random init (seed 0)."""

    name: str = "vjepa2_tiny"
    init: Literal["pretrained", "random", "file"] = "pretrained"
    weights: str | None = None  # the file or folder for init=file
    batch_size: int = 32

    def __post_init__(self) -> None:
        check_choices("encoder", self)
        check_fields("encoder", self, ">=1", "batch_size")
        if self.init == "file" and not self.weights:
            raise ConfigError("config key encoder.weights: needed with encoder.init=file")


@dataclass(frozen=True)
class ModelConfig:
    """Pooling and projector between encoder tokens and the LM; ``video: false`` is the blind baseline."""

    video: bool = True
    pooling: Literal["attentive", "spatial", "none"] = "attentive"
    queries: int = 16  # attentive pooler outputs
    pool_grid: tuple[int, int] = (2, 2)  # spatial pooling: (h, w) cells per time step
    projector_layers: int = 2

    def __post_init__(self) -> None:
        check_choices("model", self)
        check_fields("model", self, ">=1", "queries", "pool_grid", "projector_layers")


@dataclass(frozen=True)
class LMConfig:
    """``pretrained``: a name or folder for ``AutoModelForCausalLM.from_pretrained``; else built from the fields."""

    pretrained: str | None = None
    tokenizer: str | None = None  # default: the pretrained LM's own; the QA word tokenizer for a config LM
    arch: Literal["llama", "qwen2"] = "llama"
    hidden_size: int = 192
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 512

    def __post_init__(self) -> None:
        check_choices("lm", self)
        check_fields("lm", self, ">=1", "hidden_size", "layers", "heads", "intermediate_size", "max_positions")
        if self.hidden_size % self.heads:
            raise ConfigError(f"config key lm.heads: {self.heads} does not divide lm.hidden_size {self.hidden_size}")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: steps, peak learning rate (linear warmup, cosine decay), weight decay."""

    steps: int = 1000
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.01


@dataclass(frozen=True)
class LoraConfig:
    """Stage 2 with LoRA adapters on the LM (needs ``peft``) instead of full fine-tuning."""

    enabled: bool = False
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class QAConfig:
    """A video-QA run: stage 1 aligns pooler + projector (LM frozen), stage 2 also trains the LM."""

    out: str = "runs/qa/synthetic-tiny"
    seed: int = 0
    batch_size: int = 32
    dtype: Literal["bf16", "fp32"] = "bf16"
    threads: int = 0  # torch threads; 0 keeps torch's default
    log_every: int = 100
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    stage1: StageConfig = field(default_factory=lambda: StageConfig(steps=200, lr=1e-3))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=1500, lr=5e-4))
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        if self.dtype not in ("bf16", "fp32"):
            raise ConfigError(f"config key dtype: {self.dtype!r} is not one of ['bf16', 'fp32']")
        for name, low in (("batch_size", 1), ("log_every", 1), ("threads", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"config key {name}: must be >= {low}, got {getattr(self, name)}")
        for name in ("stage1", "stage2"):
            check_fields(name, getattr(self, name), ">=0", "steps", "warmup", "weight_decay")
            check_fields(name, getattr(self, name), ">0", "lr")
