"""Does V-JEPA pretraining learn motion? Frozen-feature probes on the synthetic world, three encoders, one table.

1. Pretrain a tiny encoder with the V-JEPA objective on the synthetic world for a fixed wall-clock budget
   (``configs/pretrain/tiny-synthetic.yaml``, 2 CPU cores).
2. Pretrain the same encoder + predictor with the pixel-reconstruction objective (MAE-style) for the same budget.
3. Freeze each (and a randomly initialised copy), extract features of held-out clips (scenes never seen in
   pretraining), and train attentive probes for the direction of motion (8 classes, chance 12.5%).

    python benchmarks/pretrain_probe.py --minutes 15            # the BENCHMARKS.md numbers (about 40 min)
    python benchmarks/pretrain_probe.py --minutes 1 --quick     # smoke run
    python benchmarks/pretrain_probe.py --minutes 20 --objectives jepa --probe-depth 1 --probe-dtype bf16 \
        --out runs/pretrain-probe-p8 model.encoder=vit_tiny_p8     # 8 px patches, V-JEPA 1's one-block probe

The table also gives each encoder's clip-shared variance (:func:`clip_share`): how much of the token features is
the same for every token of a clip.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from vjepa2.config_io import load_config
from vjepa2.data.synthetic import SyntheticVideoDataset, split_seeds
from vjepa2.eval.features import extract_features
from vjepa2.eval.probe import ProbeConfig, train_probes
from vjepa2.models import VisionTransformer
from vjepa2.train.pretrain import build_models, train
from vjepa2.train.pretrain_config import PretrainConfig
from vjepa2.weights import load_encoder
from vjepa2.weights.files import load_checkpoint

CONFIG = Path(__file__).parent.parent / "configs/pretrain/tiny-synthetic.yaml"
ENCODERS = {"jepa": ("V-JEPA (target encoder)", "target_encoder"), "pixel": ("pixel reconstruction", "encoder")}


def pretrain(objective: str, minutes: float, out: Path, overrides: list[str]) -> Path:
    """Pretrain with ``objective`` for ``minutes`` (reusing an earlier run's checkpoint); returns the checkpoint."""
    run = out / objective
    cfg = load_config(PretrainConfig, CONFIG, [*overrides, f"run.objective={objective}", f"run.out={run}"])
    if not (run / "latest.pt").exists():
        train(replace(cfg, run=replace(cfg.run, max_minutes=minutes or None)))
    return run / "latest.pt"


def probe_data(cfg: PretrainConfig, split: str, n: int, task: str) -> tuple[torch.utils.data.Dataset, torch.Tensor]:
    world = replace(cfg.data.world, resolution=cfg.data.crop, frames=cfg.data.frames, one_mover_prob=1.0)
    data = SyntheticVideoDataset(world, seeds=split_seeds(split, n))
    labels = torch.tensor([data.world.scene(s).labels[task] for s in data.seeds])
    return data, labels


def _videos(batch: list) -> torch.Tensor:
    return torch.stack([video for video, _ in batch])


def features(encoder: VisionTransformer, data, batch: int = 64) -> torch.Tensor:
    """Frozen tokens ``[N, tokens, D]`` of the clips of ``data`` (bf16 encoder)."""
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch, num_workers=1, collate_fn=lambda b: torch.stack([x for x, _ in b])
    )
    return extract_features(encoder, loader, dtype="bf16", progress=True)


def clip_share(feats: torch.Tensor) -> float:
    """Share of the feature variance shared by all tokens of a clip: var over clips of the clip's mean token over
    the total variance (``feats [N, tokens, D]``). Near 0 for local features, 1 when every token says the same."""
    feats = feats.float()
    return (feats.mean(1).var(0).mean() / feats.flatten(0, 1).var(0).mean()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--minutes", type=float, default=15.0, help="pretraining budget per objective (0: none; optim.steps decides)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/pretrain-probe"))
    parser.add_argument("--train-clips", type=int, default=3000)
    parser.add_argument("--test-clips", type=int, default=1000)
    parser.add_argument("--task", default="direction")
    parser.add_argument("--quick", action="store_true", help="small probe sets for a smoke run")
    parser.add_argument("--objectives", nargs="+", default=["jepa", "pixel"], choices=["jepa", "pixel"])
    parser.add_argument("--probe-depth", type=int, default=2, help="probe blocks: self-attention + 1 cross-attention")
    parser.add_argument("--probe-epochs", type=int, default=30)
    parser.add_argument("--probe-dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("overrides", nargs="*", help="pretraining config overrides, e.g. optim.lr=5e-4")
    args = parser.parse_args()
    n_train, n_test = (300, 200) if args.quick else (args.train_clips, args.test_clips)
    cfg = load_config(PretrainConfig, CONFIG, args.overrides)
    ckpts = {obj: pretrain(obj, args.minutes, args.out, args.overrides) for obj in args.objectives}
    torch.manual_seed(0)
    encoders = {"random init": (build_models(cfg)[0], None)}
    for obj, ckpt in ckpts.items():
        name, key = ENCODERS[obj]
        encoders[name] = (load_encoder(cfg.model.encoder, ckpt, key=key), ckpt)
    train_data, y_train = probe_data(cfg, "val", n_train, args.task)
    test_data, y_test = probe_data(cfg, "test", n_test, args.task)
    classes = int(max(y_train.max(), y_test.max())) + 1
    epochs = 10 if args.quick else args.probe_epochs
    probe_cfg = ProbeConfig(depth=args.probe_depth, num_heads=3, epochs=epochs, batch_size=64, dtype=args.probe_dtype)
    rows = []
    for name, (enc, ckpt) in encoders.items():
        x_train, x_test = features(enc, train_data), features(enc, test_data)
        result = train_probes(x_train, y_train, x_test, y_test, classes, probe_cfg)
        steps = load_checkpoint(ckpt)["step"] if ckpt else 0
        row = {"encoder": name, "pretrain_steps": steps, "accuracy": result.accuracy, "head": result.head}
        rows.append(row | {"clip_share": clip_share(x_train)})
    chance = 100 / classes
    print(f"\n{args.task} probe: {classes} classes (chance {chance:.1f}%), {n_train} train / {n_test} test clips")
    budget = f"{args.minutes} min" if args.minutes else "the config's optim.steps"
    print(f"pretraining budget: {budget} per objective on {torch.get_num_threads()} threads")
    print(f"probe: {probe_cfg}")
    print("| encoder | pretraining steps | probe top-1 | clip-shared variance |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['encoder']} | {r['pretrain_steps']} | {100 * r['accuracy']:.1f}% | {100 * r['clip_share']:.0f}% |")
    (args.out / f"results-{args.task}-depth{args.probe_depth}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
