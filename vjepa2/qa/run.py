"""A video-QA run folder: building the pieces from a config, saving them, and loading them back.

Layout of ``<out>/``: ``config.yaml`` (the resolved config), ``tokenizer/`` (``save_pretrained``), ``lm/config.json``
(the LM's ``transformers`` config), ``checkpoint.pt`` (``{"pooler", "projector", "lm"}`` state dicts and the
steps done, loadable with ``torch.load(weights_only=True)``), ``metrics.jsonl`` (the training losses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vjepa2.config_io import load_config, save_config
from vjepa2.data.synthetic import WorldConfig
from vjepa2.errors import UserError
from vjepa2.qa.features import build_encoder, clip_features
from vjepa2.qa.model import VideoQAModel, build_lm, build_model
from vjepa2.qa.qa_config import QAConfig
from vjepa2.qa.synthetic import QASet, build_qa_set, vocabulary
from vjepa2.qa.tokenizer import build_tokenizer, load_tokenizer

CHECKPOINT = "checkpoint.pt"


def world_config(cfg: QAConfig) -> WorldConfig:
    """The synthetic world the questions are about."""
    return WorldConfig(resolution=cfg.data.resolution, frames=cfg.data.frames)


def qa_set(cfg: QAConfig, split: str, clips: int | None = None) -> QASet:
    """The balanced questions of a split (``clips`` defaults to the config's count for that split)."""
    n = clips if clips is not None else (cfg.data.train_clips if split == "train" else cfg.data.test_clips)
    return build_qa_set(split, n, world_config(cfg), cfg.data.types, cfg.data.mc_options, cfg.data.formats)


@dataclass
class Features:
    """Encoder tokens of a QA set's clips: ``tokens [N_clips, N, D]`` and each seed's row."""

    tokens: torch.Tensor
    row: dict[int, int]

    def of(self, seeds: list[int]) -> torch.Tensor:
        return self.tokens[torch.tensor([self.row[s] for s in seeds])]


def encoder_grid(encoder: torch.nn.Module, cfg: QAConfig) -> tuple[int, int, int]:
    """Token grid ``(T', H', W')`` of the QA clips."""
    p, t = encoder.cfg.patch_size, encoder.cfg.tubelet_size
    if cfg.data.resolution % p or cfg.data.frames % t:
        raise UserError(
            f"data.resolution {cfg.data.resolution} / data.frames {cfg.data.frames} must be multiples "
            f"of the encoder's patch {p} / tubelet {t}"
        )
    return cfg.data.frames // t, cfg.data.resolution // p, cfg.data.resolution // p


def load_encoder_for(cfg: QAConfig) -> torch.nn.Module:
    return build_encoder(cfg.encoder.name, cfg.encoder.init, cfg.encoder.weights)


def features_for(cfg: QAConfig, encoder: torch.nn.Module, qa: QASet) -> Features:
    """Cached encoder tokens of every clip a QA set asks about."""
    tokens = clip_features(
        encoder, world_config(cfg), list(qa.seeds), cfg.data.cache_dir, cfg.encoder.batch_size, cfg.dtype
    )
    return Features(tokens, {s: i for i, s in enumerate(qa.seeds)})


def new_tokenizer(cfg: QAConfig) -> Any:
    """The tokenizer of a new run: given, the pretrained LM's own, or the QA word-level tokenizer."""
    name = cfg.lm.tokenizer or cfg.lm.pretrained
    return load_tokenizer(name) if name else build_tokenizer(vocabulary(world_config(cfg)))


def new_model(cfg: QAConfig, tokenizer: Any, encoder: torch.nn.Module | None) -> VideoQAModel:
    """The model of a new run (a video model needs the encoder for its width and token grid)."""
    lm = build_lm(cfg.lm, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    if lm.get_input_embeddings().weight.shape[0] < len(tokenizer):
        raise UserError(
            f"the LM's vocabulary ({lm.get_input_embeddings().weight.shape[0]}) is smaller than the "
            f"tokenizer's ({len(tokenizer)}): set lm.tokenizer to the LM's own"
        )
    if not cfg.model.video:
        return build_model(cfg.model, lm, 0, (0, 0, 0))
    if encoder is None:
        raise UserError("a video model needs its encoder")
    return build_model(cfg.model, lm, encoder.cfg.embed_dim, encoder_grid(encoder, cfg))


def save_run(out: Path, cfg: QAConfig, tokenizer: Any, model: VideoQAModel, steps: dict[str, int]) -> Path:
    """Write config, tokenizer, LM config and ``checkpoint.pt`` into ``out``; returns the checkpoint path."""
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    tokenizer.save_pretrained(str(out / "tokenizer"))
    model.lm.config.save_pretrained(str(out / "lm"))
    state = {
        "pooler": model.pooler.state_dict() if model.pooler is not None else {},
        "projector": model.projector.state_dict() if model.projector is not None else {},
        "lm": {k: v.detach().clone() for k, v in model.lm.state_dict().items()},
        "steps": dict(steps),
    }
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out / CHECKPOINT)
    return out / CHECKPOINT


@dataclass
class LoadedRun:
    cfg: QAConfig
    tokenizer: Any
    model: VideoQAModel
    encoder: torch.nn.Module | None
    steps: dict[str, int]


def load_run(run_dir: str | Path) -> LoadedRun:
    """A trained run: config, tokenizer, model with its weights (eval mode) and, for a video model, the encoder."""
    import transformers

    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"run folder {run} does not exist")
    for need in ("config.yaml", "tokenizer", "lm/config.json", CHECKPOINT):
        if not (run / need).exists():
            raise UserError(f"{run} is not a finished video-QA run: {run / need} is missing")
    cfg = load_config(QAConfig, run / "config.yaml")
    tokenizer = load_tokenizer(run / "tokenizer")
    try:
        state = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise UserError(f"{run / CHECKPOINT}: cannot read the checkpoint ({type(err).__name__}: {err})") from err
    lm = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(str(run / "lm")))
    encoder = load_encoder_for(cfg) if cfg.model.video else None
    if not cfg.model.video:
        model = build_model(cfg.model, lm, 0, (0, 0, 0))
    else:
        model = build_model(cfg.model, lm, encoder.cfg.embed_dim, encoder_grid(encoder, cfg))
    model.lm.load_state_dict(state["lm"])
    if model.pooler is not None:
        model.pooler.load_state_dict(state["pooler"])
    if model.projector is not None:
        model.projector.load_state_dict(state["projector"])
    return LoadedRun(cfg, tokenizer, model.eval(), encoder, dict(state.get("steps", {})))
