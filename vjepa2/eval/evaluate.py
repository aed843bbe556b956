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
import torch.nn.functional as F

from vjepa2.data.randaugment import ProbeAugmentConfig
from vjepa2.data.transforms import EVAL_RESIZE_RATIO
from vjepa2.devices import pick_device
from vjepa2.errors import UserError
from vjepa2.eval.baselines import BaselineConfig, knn_probe, linear_probe, pool
from vjepa2.eval.cache import cache_key, cached_features, resolve_weights, weights_id
from vjepa2.eval.data import ClipSpec, Source, load_source
from vjepa2.eval.features import encode_source, extract_features, load_frozen_encoder, stream_batches
from vjepa2.eval.probe import ProbeConfig, best_probe, build_probe, train_grid_stream, train_probes


@dataclass(frozen=True)
class EncoderSection:
    encoder: str = "vit_large"  # encoder preset
    weights: str | None = None  # official .pt, HF folder or a `vjepa2 pretrain` run folder (None: RANDOM)
    key: str = "target_encoder"  # checkpoint entry
    out_layers: tuple[int, ...] = ()  # e.g. [17, 19, 21, 23]: these layers' tokens concatenated (multilevel)
    predictor: bool = False  # anticipation: join the pretrained predictor's tokens of the anticipated slot


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
    anticipation: float | None = None  # seconds: train/val are EK100 annotation CSVs (action anticipation)
    video_root: str | None = None  # EK100 videos: ROOT/<participant_id>/videos/<video_id>.MP4 (layout 0)
    video_layout: int = 0  # 1: ROOT/<participant_id>/<video_id>.MP4


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
    augment: ProbeAugmentConfig = field(default_factory=ProbeAugmentConfig)  # on: training features on the fly
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        if not self.data.train or not self.data.val:
            raise UserError("data.train and data.val must both be set (e.g. data.train=train.csv data.val=val.csv)")
        if self.data.anticipation is not None and (self.data.anticipation < 0 or not self.data.video_root):
            raise UserError("data.anticipation (seconds, >= 0) needs data.video_root (the EK100 video folder)")
        if self.data.anticipation is not None and self.augment.enabled:
            raise UserError("augment.enabled is not supported with data.anticipation yet (features are cached)")
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
    if cfg.data.anticipation is not None:
        return evaluate_anticipation(cfg)
    device = pick_device(cfg.run.device)
    encoder = load_frozen_encoder(cfg.model.encoder, cfg.model.weights, cfg.model.key)
    spec = clip_spec(cfg.data, encoder.cfg.img_size)
    train = load_source(cfg.data.train, spec)
    val = load_source(cfg.data.val, spec, classes=train.classes)
    x_val = source_features(encoder, val, spec, cfg, device)
    classes = train.classes if len(train.classes) >= len(val.classes) else val.classes
    if cfg.augment.enabled:  # fresh augmented clips every epoch: no cache, no pooled baselines
        probe = train_augmented(encoder, train, spec, cfg, device, x_val, val.labels, len(classes))
    else:
        x_train = source_features(encoder, train, spec, cfg, device)
        probe = train_probes(x_train, train.labels, x_val, val.labels, len(classes), cfg.probe, cfg.run.progress)
    rows = [
        {
            "probe": f"attentive (best of {len(cfg.probe.grid)})",
            "setting": f"lr {probe.head[0]:g}, wd {probe.head[1]:g}",
            "top1": probe.accuracy,
            "top5": probe.top5,
        }
    ]
    if not cfg.augment.enabled:
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


def evaluate_anticipation(cfg: ProbeRunConfig) -> dict[str, Any]:
    """The EK100 anticipation probe: context (+ predicted) tokens of the clips ``data.anticipation`` s before each
    action, the verb/noun/action probe grid with the focal loss, class-mean recall@5 (``results.json``)."""
    from vjepa2.eval.anticipation import TASKS, anticipation_features, train_anticipation
    from vjepa2.eval.data import clip_batches
    from vjepa2.eval.epic_kitchens import EK100Source
    from vjepa2.weights import load_predictor

    d, m = cfg.data, cfg.model
    device = pick_device(cfg.run.device)
    encoder = load_frozen_encoder(m.encoder, m.weights, m.key).to(device)
    predictor = load_predictor(m.encoder, resolve_weights(m.weights)).eval().to(device) if m.predictor else None
    spec = clip_spec(d, encoder.cfg.img_size)
    if spec.segments != 1 or spec.views != 1:
        raise UserError("anticipation clips take data.segments=1 and data.views=1")
    train = EK100Source(d.train, d.video_root, None, d.video_layout, d.anticipation)
    val = EK100Source(d.val, d.video_root, train.class_map, d.video_layout, d.anticipation)
    ahead = int(d.anticipation * (spec.fps or 8.0))  # clip frames between the context's end and the action

    def encode(source: EK100Source) -> torch.Tensor:
        parts = []
        for clips in clip_batches(source, spec, d.batch_size, d.num_workers):
            if predictor is None:
                parts.append(extract_features(encoder, [clips], device, cfg.run.dtype, m.out_layers or None))
            else:
                ctx, pred = anticipation_features(encoder, predictor, clips, ahead, dtype=cfg.run.dtype)
                parts.append(torch.cat([ctx, pred], dim=1))
        return torch.cat(parts).half()

    key = lambda s: cache_key(  # noqa: E731
        encoder=m.encoder, weights=weights_id(resolve_weights(m.weights)), entry=m.key, predictor=m.predictor,
        dtype=cfg.run.dtype, spec=asdict(spec), source=s.name, n=len(s),
    )  # fmt: skip
    folder = Path(cfg.run.cache or Path(cfg.run.out) / "features")
    x_train, x_val = (cached_features(folder / f"{key(s)}.pt", lambda s=s: encode(s)) for s in (train, val))
    res = train_anticipation(x_train, train.labels, x_val, val.labels, train.class_map.sizes, cfg.probe)
    setting = f"lr {res.head[0]:g}, wd {res.head[1]:g}"
    rows = [{"probe": f"attentive, {t}", "setting": setting, "top1": res.recall[t], "top5": None} for t in TASKS]
    results = {
        "train": {"data": d.train, "videos": len(train), "missing_videos": train.missing},
        "val": {"data": d.val, "videos": len(val), "missing_videos": val.missing},
        "classes": train.class_map.sizes[2],
        "metric": "class-mean recall@5",
        "rows": rows,
        "heads": {},
    }
    write_outputs(Path(cfg.run.out), cfg, res.model, train.classes, results, spec)
    return results


def train_augmented(
    encoder: Any,
    train: Source,
    spec: ClipSpec,
    cfg: ProbeRunConfig,
    device: torch.device,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
):
    """The probe grid trained on clips augmented afresh every epoch (``cfg.augment``) and encoded on the fly."""
    p = cfg.probe
    steps = max(len(train) // p.batch_size, 1)

    def epoch_batches(epoch: int):
        return stream_batches(
            encoder, train, spec, cfg.augment, epoch, p.batch_size, cfg.data.batch_size,
            cfg.model.out_layers or None, device, cfg.run.dtype, cfg.data.num_workers,
        )  # fmt: skip

    build = lambda: build_probe(x_val.shape[-1], num_classes, p)  # noqa: E731
    probes = train_grid_stream(build, F.cross_entropy, epoch_batches, steps, p, cfg.run.progress, "augmented probes")
    return best_probe(probes, x_val, y_val, p)


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
        f"| probe | setting | {results.get('metric', 'top-1')} | top-5 |",
        "|---|---|---|---|",
    ]
    for r in results["rows"]:
        top5 = "" if r["top5"] is None else f"{100 * r['top5']:.1f}%"
        lines.append(f"| {r['probe']} | {r['setting']} | {100 * r['top1']:.1f}% | {top5} |")
    return "\n".join(lines)
