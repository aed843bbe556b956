"""Understanding, measured: probes, anticipation and curation with a pretrained encoder vs a random one.

Takes a stage-1 checkpoint of ``vjepa2 pretrain`` (e.g. from ``benchmarks/pretrain_probe.py``: a tiny encoder
pretrained on the synthetic world) and its randomly initialised twin, and measures, on held-out data:

1. Probes (``vjepa2 probe``'s code path: attentive grid, linear and k-NN on mean-pooled features) on a synthetic
   motion task (direction of motion, 8 classes), a synthetic appearance task (shape x colour, 12 classes) and a
   real-image task (scikit-learn's handwritten digits as repeated-frame clips, 10 classes).
2. Anticipation: class-mean recall@5 of verb / noun / action of the probe on context + predicted tokens (the
   pretrained predictor fills the anticipated slot) vs the same probe on the context tokens alone.
3. Curation: precision of a retrieval toward a target of one kind of synthetic video from a pool mixing two kinds.

    python benchmarks/probe_eval.py --checkpoint runs/pretrain-probe/jepa            # the BENCHMARKS.md numbers
    python benchmarks/probe_eval.py --checkpoint runs/pretrain-probe/jepa --quick    # smoke run, about 2 minutes
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vjepa2.config_io import from_dict
from vjepa2.data.synthetic import SyntheticVideoDataset, WorldConfig, split_seeds
from vjepa2.eval.anticipation import AnticipationConfig, encode_anticipation, synthetic_anticipation, train_anticipation
from vjepa2.eval.baselines import pool
from vjepa2.eval.cache import resolve_weights
from vjepa2.eval.curate import plot_report, retrieve
from vjepa2.eval.evaluate import DataSection, EncoderSection, ProbeRunConfig, RunSection, evaluate
from vjepa2.eval.features import extract_features
from vjepa2.eval.probe import ProbeConfig
from vjepa2.train.pretrain import build_models
from vjepa2.train.pretrain_config import PretrainConfig
from vjepa2.weights.files import load_checkpoint

# Two kinds of synthetic video for curation: one big object in the open, or a crowd of small objects behind a bar.
KINDS = {
    "single": {"max_objects": 1, "radius": (10.0, 14.0), "occluder_prob": 0.0},
    "crowd": {"min_objects": 5, "max_objects": 6, "radius": (4.0, 6.0), "occluder_prob": 1.0},
}


@dataclass(frozen=True)
class Sizes:
    probe_train: int = 3000
    probe_test: int = 1000
    digits_train: int = 1000  # all of the fixed train split
    digits_test: int = 797
    probe_epochs: int = 30
    anticipation_train: int = 3000
    anticipation_test: int = 1000
    anticipation_epochs: int = 40
    pool_per_kind: int = 500
    target: int = 100
    retrieve: int = 200
    clusters: int = 8


QUICK = Sizes(200, 100, 200, 100, 10, 240, 120, 15, 60, 15, 30, 4)


def load_models(checkpoint: Path) -> tuple[PretrainConfig, dict[str, tuple[torch.nn.Module, torch.nn.Module]]]:
    """The run's config, and (encoder, predictor) pairs: pretrained (target encoder) and randomly initialised."""
    ckpt = load_checkpoint(checkpoint)
    cfg = from_dict(PretrainConfig, ckpt["config"])
    torch.manual_seed(0)
    random_enc, random_pred, _ = build_models(cfg)
    enc, pred, _ = build_models(cfg)
    enc.load_state_dict(ckpt["target_encoder"])
    pred.load_state_dict(ckpt["predictor"])
    models = {"random init": (random_enc, random_pred), f"V-JEPA ({ckpt['step']} steps)": (enc, pred)}
    return cfg, {
        name: (e.eval().requires_grad_(False), p.eval().requires_grad_(False)) for name, (e, p) in models.items()
    }


def probe_tasks(sizes: Sizes) -> dict[str, tuple[str, str, float]]:
    """Task name -> (train data, val data, single-view resize ratio)."""
    n, m = sizes.probe_train, sizes.probe_test
    return {
        "motion (direction, 8)": (f"synthetic:direction:val:{n}", f"synthetic:direction:test:{m}", 1.0),
        "appearance (shape x colour, 12)": (f"synthetic:appearance:val:{n}", f"synthetic:appearance:test:{m}", 1.0),
        "digits (real images, 10)": (
            f"digits:train:{sizes.digits_train}",
            f"digits:test:{sizes.digits_test}",
            256 / 224,
        ),
    }


def run_probes(pcfg: PretrainConfig, checkpoint: Path, names: list[str], sizes: Sizes, out: Path) -> list[dict]:
    """The probe table: one ``vjepa2 probe`` evaluation per task and encoder."""
    probe = ProbeConfig(depth=2, num_heads=3, epochs=sizes.probe_epochs, lrs=(1e-3, 3e-4), weight_decays=(0.01, 0.1))
    if sizes == QUICK:
        probe = replace(probe, lrs=(1e-3,), weight_decays=(0.01,))
    rows = []
    for task, (train, val, ratio) in probe_tasks(sizes).items():
        for name, weights in zip(names, [None, str(checkpoint)], strict=True):
            data = DataSection(train, val, frames=pcfg.data.frames, resolution=pcfg.data.crop, resize_ratio=ratio)
            cfg = ProbeRunConfig(
                model=EncoderSection(pcfg.model.encoder, weights),
                data=replace(data, batch_size=64),
                probe=probe,
                run=RunSection(
                    out=str(out / "probes" / task.split()[0] / name.split()[0]), cache=str(out / "features")
                ),
            )
            result = evaluate(cfg)
            top1 = {r["probe"].split()[0]: r["top1"] for r in result["rows"]}
            rows.append({"task": task, "encoder": name, **top1, "classes": result["classes"]})
            print(f"{task} / {name}: {top1}", flush=True)
    return rows


def run_anticipation(models: dict, sizes: Sizes, resolution: int) -> list[dict]:
    """Recall@5 of the probe on context + predicted tokens vs context alone, for each encoder + predictor."""
    lrs = (3e-3,) if sizes == QUICK else (3e-3, 1e-3)
    probe = ProbeConfig(depth=2, num_heads=3, epochs=sizes.anticipation_epochs, lrs=lrs, weight_decays=(0.01,))
    cfg = AnticipationConfig(resolution=resolution, probe=probe)
    x_train, y_train = synthetic_anticipation("val", sizes.anticipation_train, cfg)
    x_test, y_test = synthetic_anticipation("test", sizes.anticipation_test, cfg)
    rows = []
    for name, (encoder, predictor) in models.items():
        ctx_train, full_train = encode_anticipation(encoder, predictor, x_train, cfg)
        ctx_test, full_test = encode_anticipation(encoder, predictor, x_test, cfg)
        for inputs, (a, b) in {
            "context + predicted": (full_train, full_test),
            "context only": (ctx_train, ctx_test),
        }.items():
            result = train_anticipation(a, y_train, b, y_test, cfg.num_classes, cfg.probe)
            rows.append({"encoder": name, "inputs": inputs, **result.recall})
            print(f"anticipation / {name} / {inputs}: {result.recall}", flush=True)
    return rows


def kind_clips(kind: str, split: str, n: int, frames: int, resolution: int) -> torch.Tensor:
    world = WorldConfig(resolution=resolution, frames=frames, **KINDS[kind])
    data = SyntheticVideoDataset(world, seeds=split_seeds(split, n))
    return torch.stack([data[i][0] for i in range(n)])


def run_curation(models: dict, sizes: Sizes, frames: int, resolution: int, out: Path) -> list[dict]:
    """Precision (share of the target kind) of the retrieval toward a target of kind ``single``."""
    pool_clips = torch.cat([kind_clips(k, "val", sizes.pool_per_kind, frames, resolution) for k in KINDS])
    target_clips = kind_clips("single", "test", sizes.target, frames, resolution)
    rows = []
    for name, (encoder, _) in models.items():
        feats = [pool(extract_features(encoder, clips.split(64))) for clips in (pool_clips, target_clips)]
        cur = retrieve(feats[0], feats[1], sizes.clusters, sizes.retrieve)
        precision = (torch.from_numpy(cur.selected) < sizes.pool_per_kind).float().mean().item()
        plot_report(cur, out / f"curation-{name.split()[0]}.png", title=f"curation, {name} encoder")
        rows.append({"encoder": name, "precision": precision, "retrieved": len(cur.selected)})
        print(f"curation / {name}: precision {precision:.3f}", flush=True)
    return rows


def print_tables(results: dict) -> None:
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    print("\n| task | encoder | attentive | linear | k-NN |\n|---|---|---|---|---|")
    for r in results["probes"]:
        print(f"| {r['task']} | {r['encoder']} | {pct(r['attentive'])} | {pct(r['linear'])} | {pct(r['k-NN'])} |")
    print("\n| encoder | probe input | verb R@5 | noun R@5 | action R@5 |\n|---|---|---|---|---|")
    chance = [pct(min(5 / c, 1.0)) for c in AnticipationConfig().num_classes]
    print(f"| - | chance (a constant ranking) | {' | '.join(chance)} |")
    for r in results["anticipation"]:
        print(f"| {r['encoder']} | {r['inputs']} | {pct(r['verb'])} | {pct(r['noun'])} | {pct(r['action'])} |")
    print("\n| encoder | retrieved | precision (chance 50%) |\n|---|---|---|")
    for r in results["curation"]:
        print(f"| {r['encoder']} | {r['retrieved']} | {pct(r['precision'])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/pretrain-probe/jepa"), help="run folder or .pt")
    parser.add_argument("--out", type=Path, default=Path("runs/probe-eval"))
    parser.add_argument("--quick", action="store_true", help="small sets and short probes (about 2 minutes)")
    parser.add_argument("--threads", type=int, help="torch threads (1 is fastest for tiny models on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else Sizes()
    checkpoint = resolve_weights(args.checkpoint)
    pcfg, models = load_models(checkpoint)
    out = args.out / ("quick" if args.quick else "full")
    results = {
        "checkpoint": str(checkpoint),
        "sizes": sizes.__dict__,
        "probes": run_probes(pcfg, checkpoint, list(models), sizes, out),
        "anticipation": run_anticipation(models, sizes, pcfg.data.crop),
        "curation": run_curation(models, sizes, pcfg.data.frames, pcfg.data.crop, out),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\ncheckpoint {checkpoint}; {torch.get_num_threads()} threads; results in {out}")
    print_tables(results)


if __name__ == "__main__":
    main()
