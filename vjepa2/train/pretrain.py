"""V-JEPA 2 self-supervised pretraining (stage 1): config, build functions, one train step, and the loop.

The recipe follows the official ``app/vjepa/train.py``: multiblock masks (one encoder + predictor pass per mask
config), an EMA teacher on the full clip, L1 on layer-normed targets, AdamW without weight decay on biases and
1-D parameters, warmup-constant (or cooldown linear-decay) LR, cosine WD, bf16 autocast. All per-step randomness
(masks) is a function of ``(seed, step)`` and the data order of ``(seed, epoch, index)``, so a resumed run repeats
the uninterrupted one. With several processes, masks are drawn for the global batch and each rank takes its
samples ``rank::world``, so DDP matches a single process with the same global batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa2.config import encoder_config, predictor_config
from vjepa2.config_io import save_config, to_dict
from vjepa2.masks import MaskConfig, collate, sample_lists, token_grid
from vjepa2.models import Predictor, VisionTransformer
from vjepa2.schedules import cosine_wd, ema_momentum, linear_decay_lr, warmup_cosine_lr
from vjepa2.train import distributed as dist_utils
from vjepa2.train.checkpoint import load_resume, rng_state, set_rng_state
from vjepa2.train.dense import context_weight
from vjepa2.train.ema import ema_update
from vjepa2.train.loop import check_finite, fit
from vjepa2.train.metrics import MetricsLogger
from vjepa2.train.objectives import Student, feature_std, pixel_targets, teacher_targets
from vjepa2.train.pretrain_config import OptimSection, PretrainConfig
from vjepa2.train.rundir import check_resume, open_run, release_run, truncate_metrics
from vjepa2.weights.files import atomic_save, load_checkpoint

_log = logging.getLogger(__name__)


@dataclass
class TrainState:
    student: nn.Module  # Student(encoder, predictor), possibly DDP/FSDP-wrapped
    target: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int = 0


def build_models(cfg: PretrainConfig) -> tuple[VisionTransformer, Predictor, VisionTransformer]:
    """Context encoder, predictor (its grid at the training crop) and a frozen copy of the encoder as teacher."""
    layout = {"rope_layout": cfg.model.rope_layout} if cfg.model.rope_layout else {}
    enc_cfg = encoder_config(cfg.model.encoder, **layout)
    levels = len(enc_cfg.hierarchical_layers) if cfg.v21.deep_supervision else 1
    out_dim = 3 * enc_cfg.tubelet_size * enc_cfg.patch_size**2 if cfg.run.objective == "pixel" else None
    if levels > 1:
        out_dim = levels * enc_cfg.embed_dim
    pred_cfg = predictor_config(
        cfg.model.predictor or cfg.model.encoder,
        embed_dim=enc_cfg.embed_dim,
        patch_size=enc_cfg.patch_size,
        tubelet_size=enc_cfg.tubelet_size,
        img_size=cfg.data.crop,
        num_frames=cfg.data.frames,
        rope_layout=enc_cfg.rope_layout,
        out_dim=out_dim,
        num_mask_tokens=max(10, len(cfg.masks)),
        levels=levels,
        return_context=cfg.v21.context_loss > 0,
        modality_embedding=enc_cfg.modality_embedding,
    )
    encoder, predictor = VisionTransformer(enc_cfg), Predictor(pred_cfg)
    encoder.grad_checkpointing = predictor.grad_checkpointing = cfg.model.activation_checkpointing
    target = VisionTransformer(enc_cfg)
    target.load_state_dict(encoder.state_dict())
    target.requires_grad_(False)
    return encoder, predictor, target


def param_groups(*modules: nn.Module) -> list[dict[str, Any]]:
    """AdamW groups: weights with decay; biases and 1-D parameters (norms) without (official ``WD_exclude``)."""
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if name.endswith("bias") or p.ndim == 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0, "wd_exclude": True}]


def build_state(cfg: PretrainConfig, world: dist_utils.DistWorld) -> TrainState:
    encoder, predictor, target = build_models(cfg)
    student = Student(encoder, predictor, cfg.run.objective, cfg.model.mask_token_per_config, cfg.v21)
    student = student.to(world.device)
    target = target.to(world.device)
    strategy = cfg.run.strategy
    student = dist_utils.wrap(student, world, strategy, find_unused=True)  # spare mask tokens get no grad
    if strategy == "fsdp" and world.distributed:
        target = dist_utils.wrap(target, world, strategy)  # sharded like the encoder, so EMA is shard-wise
    o = cfg.optim
    optimizer = torch.optim.AdamW(param_groups(student), lr=o.start_lr, betas=o.betas, eps=o.eps)
    return TrainState(student, target, optimizer, torch.amp.GradScaler(enabled=False))


def schedule_values(cfg: OptimSection, step: int) -> dict[str, float]:
    """LR, weight decay and EMA momentum at ``step``."""
    if cfg.schedule == "linear_decay":
        lr = linear_decay_lr(step, total=cfg.steps, lr=cfg.lr, final_lr=cfg.final_lr, ipe_scale=cfg.ipe_scale)
    else:
        lr = warmup_cosine_lr(
            step,
            warmup=cfg.warmup,
            total=cfg.steps,
            start_lr=cfg.start_lr,
            lr=cfg.lr,
            final_lr=cfg.final_lr,
            ipe_scale=cfg.ipe_scale,
        )
    wd = cosine_wd(step, total=cfg.steps, wd=cfg.weight_decay, final_wd=cfg.final_weight_decay)
    ema = ema_momentum(step, total=cfg.steps, start=cfg.ema[0], end=cfg.ema[1], ipe_scale=cfg.ipe_scale)
    return {"lr": lr, "wd": wd, "ema": ema}


def is_image_step(cfg: PretrainConfig, step: int) -> bool:
    """V-JEPA 2.1 image steps: every ``v21.image_every``-th step trains on single frames."""
    return cfg.v21.image_every > 0 and step % cfg.v21.image_every == 0


def step_grid(cfg: PretrainConfig, step: int) -> tuple[int, int, int]:
    """The token grid of ``step``'s clips (``T = 1`` on image steps)."""
    enc_cfg = encoder_config(cfg.model.encoder)
    if is_image_step(cfg, step):
        return token_grid(1, cfg.data.crop, enc_cfg.patch_size, 1)
    return token_grid(cfg.data.frames, cfg.data.crop, enc_cfg.patch_size, enc_cfg.tubelet_size)


def step_masks(cfg: PretrainConfig, step: int, world: dist_utils.DistWorld, device: torch.device) -> list:
    """This rank's masks for ``step``: one ``(context, target)`` pair per mask config, a function of seed and step.

    Masks are drawn for the global batch in sample order, so they do not depend on the number of processes. As in
    the official collator, truncation to equal lengths happens per device batch: the samples of rank ``r`` are
    ``r::size``, taken rank by rank in groups of ``data.mask_group`` (the official per-GPU batch); a rank holding
    several groups truncates once more to their minimum. One process with the whole batch in one group is the
    previous behaviour.
    """
    grid = step_grid(cfg, step)
    configs = cfg.masks
    if is_image_step(cfg, step):  # the official image mask: blocks at 0.15 on the single-frame grid
        configs = (MaskConfig(spatial_scale=(0.15, 0.15), num_blocks=cfg.v21.image_blocks),)
    gen = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + step)
    batch, group = cfg.data.batch_size, cfg.data.mask_group
    order = [i for r in range(world.size) for i in range(r, batch, world.size)]  # rank-major sample order
    mine = order[world.rank * (batch // world.size) : (world.rank + 1) * (batch // world.size)]
    out = []
    for mask_cfg in configs:  # all configs share the block-size seed; positions continue one generator
        ctx, tgt = sample_lists(mask_cfg, grid, batch, cfg.run.seed + step, gen)
        k_ctx, k_tgt = {}, {}
        for start in range(0, batch, group):
            members = order[start : start + group]
            kc, kt = min(len(ctx[i]) for i in members), min(len(tgt[i]) for i in members)
            k_ctx.update(dict.fromkeys(members, kc))
            k_tgt.update(dict.fromkeys(members, kt))
        pair = collate(mask_cfg, [ctx[i][: k_ctx[i]] for i in mine], [tgt[i][: k_tgt[i]] for i in mine], grid)
        out.append((pair[0].to(device), pair[1].to(device)))
    return out


def autocast(cfg: PretrainConfig, device: torch.device):
    if cfg.run.dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _no_sync(module: nn.Module, last: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
    return module.no_sync() if hasattr(module, "no_sync") and not last else nullcontext()


def train_step(state: TrainState, clips: torch.Tensor, cfg: PretrainConfig, world: dist_utils.DistWorld) -> dict:
    """One optimiser step on this rank's clips ``[b, 3, T, H, W]``; returns metrics (loss averaged over ranks)."""
    values = schedule_values(cfg.optim, state.step)
    for group in state.optimizer.param_groups:
        group["lr"] = values["lr"]
        if not group.get("wd_exclude"):
            group["weight_decay"] = values["wd"]
    masks = step_masks(cfg, state.step, world, clips.device)
    image = is_image_step(cfg, state.step)
    if image:
        clips = clips[:, :, :1]  # the first frames, through the image tokenizer
    extra = {"context_weight": context_weight(cfg.v21, state.step), "grid": step_grid(cfg, state.step), "image": image}
    levels = dist_utils.unwrap(state.student).predictor.cfg.levels
    accum = cfg.optim.grad_accum
    chunks = clips.chunk(accum)
    total, std = torch.zeros((), device=clips.device), 0.0
    for i, chunk in enumerate(chunks):
        sub = [(c.chunk(accum)[i], t.chunk(accum)[i]) for c, t in masks]
        with _no_sync(state.student, last=i == len(chunks) - 1), autocast(cfg, clips.device):
            if cfg.run.objective == "pixel":
                enc = dist_utils.unwrap(state.target).cfg
                targets = pixel_targets(chunk, enc.patch_size, enc.tubelet_size)
            else:
                targets = teacher_targets(state.target, chunk, levels)
                std += feature_std(targets) / len(chunks)
            loss = state.student(chunk, sub, targets, **extra)
            state.scaler.scale(loss / len(chunks)).backward()
        total += loss.detach() / len(chunks)
    check_finite(state.step, total, state.student)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.optimizer.zero_grad(set_to_none=True)
    # the EMA teacher gives V-JEPA its targets; for the pixel baseline it is only the exported encoder
    # (target_encoder), so that both objectives export the same kind of encoder
    ema_update(state.target, dist_utils.unwrap(state.student).encoder, values["ema"])
    state.step += 1
    loss = dist_utils.all_reduce_mean(total, world).item()
    return {"loss": loss, **values, "teacher_std": std}


def save(state: TrainState, cfg: PretrainConfig, path: Path, world: dist_utils.DistWorld) -> None:
    """Write a checkpoint atomically (rank 0) with every key a resume needs; a collective under FSDP."""
    student, opt = dist_utils.full_state(state.student, state.optimizer)
    target, _ = dist_utils.full_state(state.target)
    if not world.is_main:
        return
    ckpt = {
        "encoder": {k.removeprefix("encoder."): v for k, v in student.items() if k.startswith("encoder.")},
        "predictor": {k.removeprefix("predictor."): v for k, v in student.items() if k.startswith("predictor.")},
        "target_encoder": target,
        "opt": opt,
        "scaler": state.scaler.state_dict(),
        "step": state.step,
        "rng": rng_state(),
        "config": to_dict(cfg),
        "world_size": world.size,
    }
    atomic_save(ckpt, path)


def restore(state: TrainState, ckpt: dict, optimizer: bool = True, step: bool = True) -> None:
    """Load a checkpoint written by :func:`save` into ``state`` (weights; optionally optimizer and step/RNG)."""
    student = {f"{part}.{k}": v for part in ("encoder", "predictor") for k, v in ckpt[part].items()}
    dist_utils.load_full_state(state.student, student, state.optimizer if optimizer else None, ckpt["opt"])
    dist_utils.load_full_state(state.target, ckpt["target_encoder"])
    if optimizer:
        state.scaler.load_state_dict(ckpt["scaler"])
    if step:
        state.step = int(ckpt["step"])
        set_rng_state(ckpt["rng"])


def _resolved_layout(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict with ``model.rope_layout: None`` (the encoder preset's) replaced by the preset's layout, so that
    a run saved with the explicit layout resumes under a config that leaves it to the preset."""
    model = config.get("model") or {}
    if model.get("rope_layout") is None and model.get("encoder"):
        model = {**model, "rope_layout": encoder_config(model["encoder"]).rope_layout}
    return {**config, "model": model}


def resume_or_init(state: TrainState, cfg: PretrainConfig, world: dist_utils.DistWorld, out: Path) -> None:
    """Resume from the newest undamaged checkpoint in ``out`` if any (refusing another model, warning about other
    changes), else start from ``run.init_from`` weights if given."""
    found = load_resume(out)
    if found is not None:
        path, ckpt = found
        new = {**_resolved_layout(to_dict(cfg)), "world_size": world.size}
        saved = {**ckpt, "config": _resolved_layout(ckpt.get("config", {}))}
        check_resume(path, saved, new, frozen=("model.encoder", "model.predictor", "model.rope_layout"))
        restore(state, ckpt)
        _log.info(f"resumed from {path} at step {state.step}")
    elif cfg.run.init_from:
        restore(state, load_checkpoint(cfg.run.init_from), optimizer=cfg.run.init_optimizer, step=False)
        _log.info(f"initialised from {cfg.run.init_from}")


def train(cfg: PretrainConfig, batches: Iterator[tuple[torch.Tensor, int]] | None = None) -> Path:
    """Run (or resume) pretraining; returns the run folder. ``batches`` yields ``(clips [b,3,T,H,W], skipped)``.

    The run folder is locked for the run; its ``config.yaml`` is written only after a successful restore.
    """
    world = dist_utils.init(cfg.run.device)
    out = Path(cfg.run.out)
    torch.manual_seed(cfg.run.seed)
    state = build_state(cfg, world)
    logger = MetricsLogger(out, enabled=world.is_main, tensorboard=cfg.run.tensorboard)
    try:
        if world.is_main:
            open_run(out)
        resume_or_init(state, cfg, world, out)
        if world.is_main:
            save_config(cfg, out / "config.yaml")
            truncate_metrics(logger.path, state.step)
        if batches is None:
            from vjepa2.train.data import pretrain_batches

            batches = pretrain_batches(cfg, world, start_step=state.step)
        _loop(state, cfg, world, batches, logger, out)
    finally:
        logger.close()
        release_run(out)
    return out


def _loop(state, cfg: PretrainConfig, world, batches, logger: MetricsLogger, out: Path) -> None:
    skipped = 0

    def step() -> dict:
        nonlocal skipped
        tic = time.monotonic()
        clips, n_bad = next(batches)
        skipped += n_bad
        metrics = train_step(state, clips.to(world.device, non_blocking=True), cfg, world)
        clips_per_s = cfg.data.batch_size / (time.monotonic() - tic)
        return {**metrics, "step": state.step, "skipped": skipped, "clips_per_s": clips_per_s}

    if state.step < cfg.optim.steps:
        save_fn = lambda path: save(state, cfg, path, world)  # noqa: E731
        fit(step, save_fn, total=cfg.optim.steps, run=cfg.run, out=out, logger=logger, desc="pretrain")


def cooldown_config(cfg: PretrainConfig, init_from: str, frames: int, crop: int, steps: int) -> PretrainConfig:
    """The progressive-resolution cooldown of ``cfg``: more frames / larger crop, linear LR decay, from a checkpoint."""
    return replace(
        cfg,
        data=replace(cfg.data, frames=frames, crop=crop),
        optim=replace(cfg.optim, schedule="linear_decay", steps=steps, warmup=0, final_lr=1e-6),
        run=replace(cfg.run, init_from=init_from),
    )
