"""The training loop shared by pretraining and world-model training: steps, logging, checkpoints, time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vjepa2.train.metrics import MetricsLogger


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
            save_fn(out / "latest.pt")
        if out_of_time:
            logger.print(f"time budget of {run.max_minutes} min reached at step {step}")
        if out_of_time or step >= total:
            break
    bar.close()
