"""``vjepa2 probe``: frozen-encoder probes from one config, with cached features and a results table.

Defaults live in the dataclasses below, ``--config FILE.yaml`` overrides them and ``key=value`` arguments come last
(the machinery of ``vjepa2 pretrain``). A run encodes the train and val data once (cached under ``run.cache``,
keyed by the encoder, its weights file, the clip settings and the data), trains the attentive-probe grid, the
linear and the k-NN baselines, prints a table, and writes ``results.json``, the resolved ``config.yaml``, the best
probe in the official layout (``probe.pt``, which ``vjepa2 classify`` reads) and ``classes.txt``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vjepa2.data.transforms import EVAL_RESIZE_RATIO
from vjepa2.devices import pick_device
from vjepa2.errors import UserError
from vjepa2.eval.baselines import BaselineConfig, knn_probe, linear_probe, pool
from vjepa2.eval.cache import cache_key, cached_features, resolve_weights, weights_id
from vjepa2.eval.data import ClipSpec, Source, load_source
from vjepa2.eval.features import encode_source, load_frozen_encoder
from vjepa2.eval.probe import ProbeConfig, train_probes


@dataclass(frozen=True)
class EncoderSection:
    encoder: str = "vit_large"  # encoder preset
    weights: str | None = None  # official .pt, HF folder or a `vjepa2 pretrain` run folder (None: RANDOM)
    key: str = "target_encoder"  # checkpoint entry
    out_layers: tuple[int, ...] = ()  # e.g. [17, 19, 21, 23]: these layers' tokens concatenated (multilevel)


@dataclass(frozen=True)
class DataSection:
    train: str = ""  # list.csv, class folder, synthetic:TASK:SPLIT:N or digits:SPLIT[:N]
    val: str = ""
    frames: int = 16
    fps: float | None = 4.0
    frame_step: int | None = None  # overrides fps when set
    resolution: int | None = None  # default: the encoder preset's img_size
    segments: int = 1  # temporal clips per video (tokens concatenated)
    views: int = 1  # spatial crops per clip (softmax averaged)
    resize_ratio: float = EVAL_RESIZE_RATIO  # single view: short side to resolution * ratio, then centre crop
    batch_size: int = 8  # videos per encoder batch
    num_workers: int = 0


@dataclass(frozen=True)
class RunSection:
    out: str = "runs/probe"
    cache: str | None = None  # feature cache folder (default: <out>/features)
    device: str = "auto"
    dtype: str = "bf16"  # encoder autocast: bf16 | fp32
    progress: bool = True


@dataclass(frozen=True)
class ProbeRunConfig:
    model: EncoderSection = field(default_factory=EncoderSection)
    data: DataSection = field(default_factory=DataSection)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        if not self.data.train or not self.data.val:
            raise UserError("data.train and data.val must both be set (e.g. data.train=train.csv data.val=val.csv)")
        if self.run.dtype not in ("bf16", "fp32"):
            raise UserError(f"run.dtype must be bf16 or fp32, got {self.run.dtype!r}")


def clip_spec(data: DataSection, img_size: int) -> ClipSpec:
    """The clip settings of a probe run (resolution defaults to the encoder's ``img_size``)."""
    d = asdict(data)
    fields = ("frames", "fps", "frame_step", "segments", "views", "resize_ratio")
    return ClipSpec(resolution=data.resolution or img_size, **{k: d[k] for k in fields})


def source_features(encoder: Any, source: Source, spec: ClipSpec, cfg: ProbeRunConfig, device: torch.device):
    """Probe inputs ``[N, V, tokens, D]`` of ``source``, from the cache when this exact set was encoded before."""
    m = cfg.model
    key = cache_key(
        encoder=m.encoder,
        weights=weights_id(resolve_weights(m.weights)),
        entry=m.key,
        out_layers=m.out_layers,
        dtype=cfg.run.dtype,
        spec=asdict(spec),
        source=source.name,
        n=len(source),
    )
    cache = Path(cfg.run.cache or Path(cfg.run.out) / "features") / f"{key}.pt"
    compute = lambda: encode_source(  # noqa: E731
        encoder, source, spec, m.out_layers or None, device, cfg.run.dtype,
        cfg.data.batch_size, cfg.data.num_workers, cfg.run.progress,
    )  # fmt: skip
    return cached_features(cache, compute)


def evaluate(cfg: ProbeRunConfig) -> dict[str, Any]:
    """Encode, train the probes and baselines, write the outputs; returns the results dict (also ``results.json``)."""
    device = pick_device(cfg.run.device)
    encoder = load_frozen_encoder(cfg.model.encoder, cfg.model.weights, cfg.model.key)
    spec = clip_spec(cfg.data, encoder.cfg.img_size)
    train = load_source(cfg.data.train, spec)
    val = load_source(cfg.data.val, spec, classes=train.classes)
    x_train, x_val = (source_features(encoder, s, spec, cfg, device) for s in (train, val))
    classes = train.classes if len(train.classes) >= len(val.classes) else val.classes
    probe = train_probes(x_train, train.labels, x_val, val.labels, len(classes), cfg.probe, cfg.run.progress)
    rows = [
        {
            "probe": f"attentive (best of {len(cfg.probe.grid)})",
            "setting": f"lr {probe.head[0]:g}, wd {probe.head[1]:g}",
            "top1": probe.accuracy,
            "top5": probe.top5,
        }
    ]
    rows += baseline_rows(pool(x_train), train.labels, pool(x_val), val.labels, len(classes), cfg.baselines)
    results = {
        "train": {"data": cfg.data.train, "videos": len(train)},
        "val": {"data": cfg.data.val, "videos": len(val)},
        "classes": len(classes),
        "rows": rows,
        "heads": {f"lr {lr:g}, wd {wd:g}": acc for (lr, wd), acc in probe.accuracies.items()},
    }
    write_outputs(Path(cfg.run.out), cfg, probe.model, classes, results, spec)
    return results


def baseline_rows(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, classes: int, cfg
) -> list[dict[str, Any]]:
    """Result rows of the linear and k-NN probes on pooled features ``[N, D]`` (as configured)."""
    rows = []
    if cfg.linear:
        acc, wd = linear_probe(x_train, y_train, x_val, y_val, classes, cfg)
        rows.append({"probe": "linear (mean-pooled)", "setting": f"wd {wd:g}", "top1": acc, "top5": None})
    if cfg.knn_k > 0:
        acc = knn_probe(x_train, y_train, x_val, y_val, classes, cfg.knn_k, cfg.knn_temperature)
        rows.append({"probe": "k-NN (mean-pooled)", "setting": f"k {cfg.knn_k}", "top1": acc, "top5": None})
    return rows


def write_outputs(out: Path, cfg: ProbeRunConfig, model: Any, classes: list[str], results: dict, spec: ClipSpec):
    """``config.yaml``, ``results.json``, ``classes.txt`` and the best probe ``probe.pt`` (official layout)."""
    from vjepa2.config_io import save_config
    from vjepa2.weights import save_official

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    meta = {"encoder": cfg.model.encoder, "out_layers": list(cfg.model.out_layers), "clip": asdict(spec)}
    extra = {"probe_num_heads": model.cfg.num_heads, "vjepa2": meta}
    save_official(out / "probe.pt", classifiers=[model], extra=extra)


def format_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table, with the data sizes and chance level above it."""
    n = results["classes"]
    lines = [
        f"train: {results['train']['data']} ({results['train']['videos']} videos); "
        f"val: {results['val']['data']} ({results['val']['videos']} videos); {n} classes (chance {100 / n:.1f}%)",
        "| probe | setting | top-1 | top-5 |",
        "|---|---|---|---|",
    ]
    for r in results["rows"]:
        top5 = "" if r["top5"] is None else f"{100 * r['top5']:.1f}%"
        lines.append(f"| {r['probe']} | {r['setting']} | {100 * r['top1']:.1f}% | {top5} |")
    return "\n".join(lines)
