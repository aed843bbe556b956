"""V-JEPA 2-AC world-model training (stage 2, official ``app/vjepa_droid/train.py``).

A frozen encoder (an official checkpoint or a stage-1 run) encodes each frame alone; features are layer-normed.
The action-conditioned predictor learns with teacher forcing (predict frames 1..T-1 from frames 0..T-2, actions and
states) plus a rollout loss (feed its own first prediction back and predict ``auto_steps`` frames
autoregressively, gradients through the first prediction), both L1; warmup-stable-decay LR, AdamW. Encoder features
can be cached to disk once (``data.cache_features``), after which a step costs only the predictor.

The predictor's ``action_dim`` / ``state_dim`` come from the trajectories: 7 / 7 for Franka poses, ``k x`` the env's
action dim / its state dim for benchmark envs sampled every ``k`` steps (Two-Rooms at ``data.frame_step=5``: 10 / 2).
``optim.auto_steps`` means what the official key means (0 and 1 both keep the one-step rollout term);
``optim.rollout_loss=false`` trains with teacher forcing only (the rollout-loss ablation, not official).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vjepa2.config import ac_predictor_config
from vjepa2.config_io import save_config, to_dict
from vjepa2.errors import ConfigError
from vjepa2.models import ACPredictor
from vjepa2.models.encode import layer_norm
from vjepa2.schedules import wsd_lr
from vjepa2.train import distributed as dist_utils
from vjepa2.train.ac_config import ACTrainConfig
from vjepa2.train.checkpoint import load_resume, rng_state, set_rng_state
from vjepa2.train.loop import check_finite, fit
from vjepa2.train.metrics import MetricsLogger
from vjepa2.train.pretrain import autocast, param_groups
from vjepa2.train.rundir import check_resume, open_run, release_run, truncate_metrics
from vjepa2.weights import load_encoder
from vjepa2.weights.files import atomic_save

_log = logging.getLogger(__name__)


def ac_losses(
    predictor: nn.Module,
    h: torch.Tensor,
    actions: torch.Tensor,
    states: torch.Tensor,
    auto_steps: int = 2,
    rollout_loss: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing and rollout L1 losses on layer-normed features.

    Args:
        predictor: the AC predictor.
        h: features ``[B, T, HW, D]`` (layer-normed targets, no grad).
        actions: ``[B, T - 1, A]``; ``actions[:, t]`` leads from frame t to t + 1.
        states: ``[B, T, S]``.
        auto_steps: frames predicted autoregressively from frame 0 (official), capped at T - 1; as in the official
            loop, 0 and 1 both give the one-step term (the first teacher-forcing prediction against frame 1).
        rollout_loss: False skips the rollout term (teacher forcing only; an ablation, not official).

    Returns:
        ``(teacher_forcing, rollout)`` losses; rollout is 0 when ``rollout_loss`` is False.
    """
    B, T, hw, D = h.shape
    z = predictor(h[:, :-1].flatten(1, 2), actions, states[:, :-1])  # predictions of frames 1..T-1
    z = layer_norm(z.float()).view(B, T - 1, hw, D)
    tf = (z - h[:, 1:]).abs().mean()
    if not rollout_loss:
        return tf, torch.zeros_like(tf)
    steps = max(1, min(auto_steps, T - 1))
    preds = [z[:, 0]]  # the teacher-forcing prediction of frame 1 seeds the rollout (gradients flow through it)
    for n in range(1, steps):
        history = torch.stack([h[:, 0], *preds], dim=1)  # [B, n + 1, HW, D]
        out = predictor(history.flatten(1, 2), actions[:, : n + 1], states[:, : n + 1])
        preds.append(layer_norm(out.float()).view(B, n + 1, hw, D)[:, -1])
    rollout = (torch.stack(preds, dim=1) - h[:, 1 : steps + 1]).abs().mean()
    return tf, rollout


@dataclass
class ACState:
    encoder: nn.Module  # frozen
    predictor: nn.Module  # possibly DDP/FSDP-wrapped
    optimizer: torch.optim.Optimizer
    step: int = 0


def build_state(cfg: ACTrainConfig, world: dist_utils.DistWorld, dims: Mapping[str, int] | None = None) -> ACState:
    """Frozen encoder from its weights, a fresh AC predictor at the data resolution, AdamW.

    ``dims``: the predictor's ``action_dim`` / ``state_dim`` (from the data); else ``model.*``, else the preset's.
    """
    m = cfg.model
    if m.encoder_weights == "pretrained":  # the preset's weights by name: packaged (vjepa2_tiny) or released
        encoder = load_encoder(m.encoder, pretrained=True)
    else:
        encoder = load_encoder(m.encoder, m.encoder_weights, m.encoder_key)
    encoder = encoder.eval().requires_grad_(False).to(world.device)
    dims = dims or {k: getattr(m, k) for k in ("action_dim", "state_dim") if getattr(m, k) is not None}
    pred_cfg = ac_predictor_config(
        m.predictor,
        embed_dim=encoder.embed_dim,
        patch_size=encoder.cfg.patch_size,
        img_size=cfg.data.resolution,
        action_scale=m.action_scale,
        state_scale=m.state_scale,
        residual=m.residual,
        **dims,
    )
    predictor = ACPredictor(pred_cfg).to(world.device)
    predictor = dist_utils.wrap(predictor, world, "ddp", static_graph=True)  # rollout reuses weights per backward
    o = cfg.optim
    optimizer = torch.optim.AdamW(param_groups(predictor), lr=o.start_lr, weight_decay=o.weight_decay, betas=o.betas)
    return ACState(encoder, predictor, optimizer)


def ac_step(state: ACState, batch: tuple, cfg: ACTrainConfig, world: dist_utils.DistWorld) -> dict[str, float]:
    """One optimiser step on ``(features [b,T,HW,D], actions [b,T-1,A], states [b,T,S])``."""
    o = cfg.optim
    lr = wsd_lr(
        state.step, warmup=o.warmup, anneal=o.anneal, total=o.steps, start_lr=o.start_lr, lr=o.lr, final_lr=o.final_lr
    )
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    h, actions, states = (t.to(world.device) for t in batch)
    with autocast(cfg, world.device):
        tf, rollout = ac_losses(state.predictor, h, actions, states, o.auto_steps, o.rollout_loss)
    (tf + rollout).backward()
    check_finite(state.step, (tf + rollout).detach(), state.predictor)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    tf, rollout = (dist_utils.all_reduce_mean(x.detach(), world).item() for x in (tf, rollout))
    return {"loss": tf + rollout, "teacher_forcing": tf, "rollout": rollout, "lr": lr}


def save(state: ACState, cfg: ACTrainConfig, path: Path, world: dist_utils.DistWorld) -> None:
    """Atomic checkpoint with the frozen encoder, so a world model is one self-contained file."""
    predictor, opt = dist_utils.full_state(state.predictor, state.optimizer)
    if world.is_main:
        ckpt = {
            "encoder": {k: v.cpu() for k, v in state.encoder.state_dict().items()},
            "predictor": predictor,
            "opt": opt,
            "step": state.step,
            "rng": rng_state(),
            "config": to_dict(cfg),
            "encoder_config": to_dict(state.encoder.cfg),
            "predictor_config": to_dict(dist_utils.unwrap(state.predictor).cfg),
        }
        atomic_save(ckpt, path)


def restore(state: ACState, ckpt: dict) -> None:
    dist_utils.load_full_state(state.predictor, ckpt["predictor"], state.optimizer, ckpt["opt"])
    state.step = int(ckpt["step"])
    set_rng_state(ckpt["rng"])


def train_ac(cfg: ACTrainConfig, batches=None) -> Path:
    """Train (or resume) an AC predictor; returns the run folder. ``batches`` yields ``(features, actions, states)``;
    without it they come from ``cfg.data.trajectories``, which also set the predictor's action and state widths."""
    from vjepa2.train.ac_data import ac_batches, data_dims, trajectory_dataset

    if batches is None and not cfg.data.trajectories:
        raise ConfigError("train-ac needs data: set data.trajectories=[FOLDER_OR_FILES] (e.g. `vjepa2 collect` output)")
    world = dist_utils.init(cfg.run.device)
    out = Path(cfg.run.out)
    torch.manual_seed(cfg.run.seed)
    pixels = trajectory_dataset(cfg) if batches is None else None
    state = build_state(cfg, world, None if pixels is None else data_dims(cfg, pixels))
    logger = MetricsLogger(out, enabled=world.is_main, tensorboard=cfg.run.tensorboard)
    try:
        if world.is_main:
            open_run(out)
        found = load_resume(out)
        if found is not None:
            path, ckpt = found
            new = {**to_dict(cfg), "world_size": world.size}
            check_resume(path, ckpt, new, frozen=("model.",))
            restore(state, ckpt)
            _log.info(f"resumed from {path} at step {state.step}")
        if world.is_main:
            save_config(cfg, out / "config.yaml")
            truncate_metrics(logger.path, state.step)
        if batches is None:
            batches = ac_batches(cfg, world, state.encoder, start_step=state.step, pixels=pixels)
        _loop(state, cfg, world, batches, logger, out)
    finally:
        logger.close()
        release_run(out)
    return out


def _loop(state: ACState, cfg: ACTrainConfig, world, batches, logger: MetricsLogger, out: Path) -> None:
    def step() -> dict:
        tic = time.monotonic()
        metrics = ac_step(state, next(batches), cfg, world)
        return {**metrics, "step": state.step, "clips_per_s": cfg.data.batch_size / (time.monotonic() - tic)}

    if state.step < cfg.optim.steps:
        save_fn = lambda path: save(state, cfg, path, world)  # noqa: E731
        fit(step, save_fn, total=cfg.optim.steps, run=cfg.run, out=out, logger=logger, desc="train-ac")
