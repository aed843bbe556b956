"""Planning results as tables and strict JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vjepa2.plan.cem import CEMConfig


def describe_cem(cfg: CEMConfig) -> str:
    """One line of CEM settings, e.g. ``800x10 top-10 H=1 L1<=0.075``."""
    space = f"L1<={cfg.radius:g}" if cfg.variant == "paper" else f"box {cfg.maxnorm:g}"
    closed = "" if cfg.close_gripper is None else f" gripper closed from step {cfg.close_gripper}"
    return f"{cfg.samples}x{cfg.iterations} top-{cfg.topk} H={cfg.horizon} {space}{closed}"


def result_row(name: str, rows: list[dict[str, Any]], settings: str) -> dict[str, Any]:
    """A planner's summary (success rate, successes, final distance, seconds per action...) and its episodes."""
    from vjepa2.plan.mpc import summarize

    summary = summarize(rows)
    return {"planner": name, "cem": settings, "successes": sum(bool(r["success"]) for r in rows), **summary,
            "episode_rows": rows}  # fmt: skip


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table: planner, success % (k/n), mean final distance, seconds per action, CEM settings."""
    lines = [
        "| planner | success | final distance (m) | s / action | CEM |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        success = f"{100 * r['success_rate']:.0f}% ({r['successes']}/{r['episodes']})"
        lines.append(
            f"| {r['planner']} | {success} | {r['final_distance']:.3f} | {r['seconds_per_action']:.3f} | {r['cem']} |"
        )
    return "\n".join(lines)


def json_safe(x: Any) -> Any:
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def write_json(record: dict[str, Any], path: str | Path) -> Path:
    """Write ``record`` as strict JSON (NaN -> null), creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(record), indent=1))
    return path


def describe_env_cem(cfg: CEMConfig, frameskip: int) -> str:
    """One line of CEM settings, e.g. ``128x4 top-10 H=1 l2<=1.8 x5`` (``momentum 0.15`` appended when set)."""
    text = f"{cfg.samples}x{cfg.iterations} top-{cfg.topk} H={cfg.horizon} {cfg.variant}<={cfg.radius:g} x{frameskip}"
    return text + (f" momentum {cfg.momentum_mean:g}" if cfg.momentum_mean or cfg.momentum_std else "")


def format_benchmark_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table: planner, success % (k/n), final distance, env steps, seconds per action, CEM settings."""
    lines = ["| planner | success | final distance (px) | env steps | s / action | CEM |", "|---|---|---|---|---|---|"]
    for r in results:
        success = f"{100 * r['success_rate']:.0f}% ({r['successes']}/{r['episodes']})"
        lines.append(
            f"| {r['planner']} | {success} | {r['final_distance']:.1f} | {r['steps']:.1f} "
            f"| {r['seconds_per_action']:.3f} | {r['cem']} |"
        )
    return "\n".join(lines)
