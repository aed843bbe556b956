"""Training a video-QA model in the paper's two stages, as short functions and one readable loop.

- stage 1 (alignment): the LM is frozen; the pooler and projector learn to map encoder tokens into its input space;
- stage 2 (instruction tuning): the LM trains too (fully, or LoRA adapters when ``lora.enabled`` and ``peft`` is
  installed), together with pooler and projector.

The loss is the next-token cross-entropy on the answer tokens only (and the answer's eos). The encoder is frozen:
its tokens are computed once and cached (:mod:`vjepa2.qa.features`). A blind model (``model.video=false``) has no
stage 1 (nothing to align) and trains stage 2 on the text alone. Training stops with
:class:`vjepa2.errors.TrainingDiverged` on a non-finite loss or gradient, before the optimiser step.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa2.errors import RunFolderError, UserError
from vjepa2.qa.batch import item_batch
from vjepa2.qa.model import VideoQAModel, trainable
from vjepa2.qa.qa_config import LoraConfig, QAConfig, StageConfig
from vjepa2.qa.run import (
    CHECKPOINT,
    Features,
    features_for,
    load_encoder_for,
    new_model,
    new_tokenizer,
    qa_set,
    save_run,
)
from vjepa2.qa.synthetic import QAItem
from vjepa2.train.loop import check_finite

_log = logging.getLogger(__name__)


def lr_at(step: int, stage: StageConfig) -> float:
    """Linear warmup to ``stage.lr``, then cosine decay to 0 at ``stage.steps``."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    progress = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return 0.5 * stage.lr * (1 + math.cos(math.pi * min(1.0, progress)))


def apply_lora(model: VideoQAModel, cfg: LoraConfig) -> None:
    """Wrap the LM in LoRA adapters (``peft``); only the adapters of the LM train afterwards."""
    try:
        import peft
    except ImportError as err:
        raise UserError(
            "lora.enabled=true needs the `peft` package (pip install peft); it is not installed, so "
            "set lora.enabled=false for full fine-tuning of the LM"
        ) from err
    lora = peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(cfg.targets), lora_dropout=0.0)
    model.lm = peft.get_peft_model(model.lm, lora)


def merge_lora(model: VideoQAModel) -> None:
    """Fold LoRA adapters back into the LM's weights (a plain ``transformers`` model again)."""
    if hasattr(model.lm, "merge_and_unload"):
        model.lm = model.lm.merge_and_unload()


def sample(items: list[QAItem], rng: np.random.Generator, n: int) -> list[QAItem]:
    return [items[i] for i in rng.integers(len(items), size=n)]


def batch_loss(
    model: VideoQAModel, tokenizer: Any, items: list[QAItem], feats: Features | None, dtype: str
) -> torch.Tensor:
    """Mean loss on the answer tokens of ``items``."""
    text = item_batch(tokenizer, items)
    video = feats.of([i.seed for i in items]) if model.video else None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        loss, _ = model(video, text.ids, text.mask, text.labels)
    return loss


def train_stage(
    name: str,
    model: VideoQAModel,
    params: list[torch.nn.Parameter],
    stage: StageConfig,
    items: list[QAItem],
    feats: Features | None,
    tokenizer: Any,
    cfg: QAConfig,
    metrics: Any,
) -> list[float]:
    """Run one stage's ``stage.steps`` AdamW steps over ``params``; returns the loss of every step."""
    if stage.steps == 0:
        return []
    rng = np.random.default_rng([cfg.seed, 1 if name == "stage1" else 2])
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    losses, tic = [], time.monotonic()
    model.train()
    for step in range(stage.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, stage)
        loss = batch_loss(model, tokenizer, sample(items, rng, cfg.batch_size), feats, cfg.dtype)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        check_finite(step, loss.detach(), model)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == stage.steps:
            recent = float(np.mean(losses[-cfg.log_every :]))
            row = {
                "stage": name,
                "step": step + 1,
                "loss": recent,
                "lr": lr_at(step, stage),
                "seconds": round(time.monotonic() - tic, 1),
            }
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            _log.info(f"{name} step {step + 1}/{stage.steps} loss {recent:.4f} ({row['seconds']} s)")
    return losses


def set_stage(model: VideoQAModel, stage: str, cfg: QAConfig) -> list[torch.nn.Parameter]:
    """Freeze/unfreeze for a stage; returns the parameters that train."""
    model.lm.requires_grad_(stage == "stage2")
    for part in (model.pooler, model.projector):
        if part is not None:
            part.requires_grad_(True)
    if stage == "stage2" and cfg.lora.enabled:
        apply_lora(model, cfg.lora)
    return trainable(model.lm) + trainable(model.pooler) + trainable(model.projector)


def check_out(out: Path) -> None:
    """A run folder is written once: refuse one that already holds a finished run."""
    if (out / CHECKPOINT).exists():
        raise RunFolderError(f"{out} already holds a finished run ({CHECKPOINT}); choose another out= or delete it")


def train(cfg: QAConfig) -> Path:
    """Train the run of ``cfg`` into ``cfg.out``; returns the run folder."""
    out = Path(cfg.out)
    check_out(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train_set = qa_set(cfg, "train")
    _log.info(f"{len(train_set.items)} training questions about {len(train_set.seeds)} clips")
    encoder = load_encoder_for(cfg) if cfg.model.video else None
    feats = features_for(cfg, encoder, train_set) if encoder is not None else None
    tokenizer = new_tokenizer(cfg)
    model = new_model(cfg, tokenizer, encoder)
    out.mkdir(parents=True, exist_ok=True)
    items = list(train_set.items)
    steps: dict[str, int] = {}
    with open(out / "metrics.jsonl", "w") as metrics:
        if model.video:
            params = set_stage(model, "stage1", cfg)
            steps["stage1"] = len(
                train_stage("stage1", model, params, cfg.stage1, items, feats, tokenizer, cfg, metrics)
            )
        params = set_stage(model, "stage2", cfg)
        steps["stage2"] = len(train_stage("stage2", model, params, cfg.stage2, items, feats, tokenizer, cfg, metrics))
    merge_lora(model)
    save_run(out, cfg, tokenizer, model.eval(), steps)
    return out
