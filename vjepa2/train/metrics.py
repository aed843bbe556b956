"""Run logging on rank 0: a JSONL metrics file, a tqdm progress bar, optional TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class _NullBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


class MetricsLogger:
    """Append metrics dicts to ``out/metrics.jsonl`` (and TensorBoard); silent on non-main ranks."""

    def __init__(self, out: str | Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = Path(out) / "metrics.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter  # needs the `tensorboard` package

                self._tb = SummaryWriter(str(self.path.parent / "tb"))

    def log(self, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": time.time(), **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(key, value, metrics.get("step", 0))

    def progress(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train") -> tqdm | _NullBar:
        if not (self.enabled and enabled):
            return _NullBar()
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
