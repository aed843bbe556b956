"""The training loop shared by pretraining and world-model training: steps, logging, checkpoints, time budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vjepa2.errors import TrainingDiverged
from vjepa2.train.checkpoint import keep_previous
from vjepa2.train.metrics import MetricsLogger

_log = logging.getLogger(__name__)


def _finite(t: torch.Tensor) -> bool:
    t = t.to_local() if hasattr(t, "to_local") else t  # an FSDP2 shard
    return bool(torch.isfinite(t).all())


def check_finite(step: int, loss: torch.Tensor, module: torch.nn.Module) -> None:
    """Raise :class:`TrainingDiverged` before an optimiser step on a non-finite loss or gradient.

    Called between ``backward`` and ``optimizer.step``, so the weights (and every checkpoint) stay finite.
    """
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not _finite(p.grad)]
    flags = torch.tensor([float(not _finite(loss)), float(len(bad))], device=loss.device)
    if torch.distributed.is_initialized():  # every rank must stop together (FSDP ranks see only their shards)
        torch.distributed.all_reduce(flags)
    if flags[0] > 0:
        raise TrainingDiverged(f"loss is {loss.item()} at step {step + 1}; stopped before the optimiser step")
    if flags[1] > 0:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "") or "another process"
        raise TrainingDiverged(f"non-finite gradient at step {step + 1} in {shown}; stopped before the optimiser step")


def fit(
    step_fn: Callable[[], dict[str, Any]],
    save_fn: Callable[[Path], None],
    *,
    total: int,
    run: Any,
    out: Path,
    logger: MetricsLogger,
    desc: str,
) -> None:
    """Call ``step_fn`` until its metrics' ``step`` reaches ``total`` or ``run.max_minutes`` is spent.

    ``run`` supplies ``log_every``, ``checkpoint_every``, ``max_minutes``, ``progress`` and optionally ``keep_every``.
    ``latest.pt`` is written every ``checkpoint_every`` steps, at the end and when the time budget runs out.
    """
    start = time.monotonic()
    bar = None
    while True:
        tic = time.monotonic()
        metrics = step_fn()
        step = metrics["step"]
        metrics["seconds_per_step"] = time.monotonic() - tic
        if bar is None:
            bar = logger.progress(total=total, initial=step - 1, enabled=run.progress, desc=desc)
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        if step % run.log_every == 0 or step >= total:
            logger.log(metrics)
        keep = getattr(run, "keep_every", 0)
        if keep and step % keep == 0:
            save_fn(out / f"step_{step}.pt")
        out_of_time = run.max_minutes is not None and time.monotonic() - start > 60 * run.max_minutes
        if step % run.checkpoint_every == 0 or step >= total or out_of_time:
            if logger.enabled:
                keep_previous(out / "latest.pt")
            save_fn(out / "latest.pt")
        if out_of_time:
            _log.warning(f"STOPPED EARLY: the time budget run.max_minutes={run.max_minutes} was reached at step {step}")
        if out_of_time or step >= total:
            break
    bar.close()
