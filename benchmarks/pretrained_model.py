"""Frozen-feature probes of pretrained encoders against their random-init twin (the vjepa2_tiny model card's table).

Each encoder is frozen; held-out clips are encoded once (bf16) and an attentive probe is trained per task:

- ``direction``: direction of motion of the one moving object of the synthetic world (8 classes), probe trained on
  the world's ``val`` seeds, tested on its ``test`` seeds (pretraining only saw ``train`` seeds);
- ``next_event``: what happens right after the clip (nothing / bounce / collide; majority class ~62%), same seeds;
- ``digits``: scikit-learn's handwritten digits as repeated-frame clips (10 classes): probe trained on the fixed
  1000-image train split, tested on the other 797 (the pretraining mix holds only the train split's images).

Encoders are ``NAME=PATH`` pairs (a ``vjepa2 pretrain`` checkpoint, its ``target_encoder`` or ``--key``),
``NAME=init:CONFIG`` (the initial weights of the run that config makes: the exact random-init twin), ``packaged``
(the weights that ship with the package) and always ``random init`` (the same architecture, seed 0).

    python benchmarks/pretrained_model.py packaged                                # the model card table
    python benchmarks/pretrained_model.py 1k=runs/vjepa2-tiny/main/step_1000.pt 3k=... --plot docs/curve.png
    python benchmarks/pretrained_model.py packaged --tasks next_event --positions    # a probe that knows positions
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vjepa2.data.synthetic import SyntheticVideoDataset, WorldConfig, split_seeds, to_model_layout
from vjepa2.eval.features import extract_features
from vjepa2.eval.probe import ProbeConfig, train_probes
from vjepa2.models import VisionTransformer
from vjepa2.weights import load_encoder

TASKS = ("direction", "next_event", "digits")


class _Clips(torch.utils.data.Dataset):
    def __init__(self, clips: list[np.ndarray]) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_model_layout(self.clips[i])


def task_data(task: str, split: str, n: int, frames: int, size: int) -> tuple[torch.utils.data.Dataset, torch.Tensor]:
    """``(clips dataset, labels)`` of a probe task's split (``train`` or ``test``)."""
    if task == "digits":
        from vjepa2.data.digits import digit_images

        images, labels = digit_images("train" if split == "train" else "test")
        images, labels = images[:n], labels[:n]
        scale = size // images.shape[1]
        clips = [np.broadcast_to(im.repeat(scale, 0).repeat(scale, 1)[None, :, :, None], (frames, size, size, 3))
                 for im in images]  # fmt: skip
        return _Clips(clips), torch.as_tensor(labels).long()
    world = WorldConfig(resolution=size, frames=frames, one_mover_prob=1.0)
    data = SyntheticVideoDataset(world, seeds=split_seeds("val" if split == "train" else "test", n))
    labels = torch.tensor([data.world.scene(s).labels[task] for s in data.seeds])
    return _VideoOnly(data), labels


class _VideoOnly(torch.utils.data.Dataset):
    def __init__(self, data: SyntheticVideoDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i][0]


def features(encoder: VisionTransformer, data: torch.utils.data.Dataset) -> torch.Tensor:
    loader = torch.utils.data.DataLoader(data, batch_size=64, num_workers=0)
    return extract_features(encoder, loader, dtype="bf16", progress=False)


def sincos_positions(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Fixed 3D sine-cosine position codes ``[T * H * W, dim]`` of a ``(T, H, W)`` token grid (time-major).

    The official probe sees the tokens without their positions (a RoPE encoder adds none to its outputs), so
    ``--positions`` adds these to the frozen tokens: a probe variant that can read where a token is.
    """
    k = dim // 6  # sin and cos of k frequencies per axis; the remaining dims stay zero
    freqs = 1.0 / 100 ** (torch.arange(k) / k)
    axes = []
    for i, n in enumerate(grid):
        angle = torch.arange(n).float()[:, None] * freqs
        shape = [1, 1, 1, 2 * k]
        shape[i] = n
        axes.append(torch.cat([angle.sin(), angle.cos()], 1).view(shape).expand(*grid, 2 * k))
    codes = torch.cat(axes, -1).reshape(-1, 6 * k)
    return torch.nn.functional.pad(codes, (0, dim - 6 * k))


def run_init(config: str) -> VisionTransformer:
    """The encoder a ``vjepa2 pretrain --config CONFIG`` run starts from (its seed, its initialisation)."""
    from vjepa2.config_io import load_config
    from vjepa2.train.pretrain import build_models
    from vjepa2.train.pretrain_config import PretrainConfig

    cfg = load_config(PretrainConfig, config)
    torch.manual_seed(cfg.run.seed)
    return build_models(cfg)[0]


def encoders(specs: list[str], preset: str, key: str = "target_encoder") -> dict[str, VisionTransformer]:
    torch.manual_seed(0)
    out = {"random init": load_encoder(preset)}
    for spec in specs:
        if spec == "packaged":
            out["packaged " + preset] = load_encoder(preset, pretrained=True)
        elif spec.partition("=")[2].startswith("init:"):  # the weights a pretraining config's run starts from
            name, _, path = spec.partition("=")
            out[name] = run_init(path.removeprefix("init:"))
        else:
            name, _, path = spec.partition("=")
            out[name] = load_encoder(preset, path, key=key)
    return {k: v.eval() for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("encoders", nargs="*", help="'packaged' and/or NAME=CHECKPOINT")
    parser.add_argument("--preset", default="vjepa2_tiny")
    parser.add_argument(
        "--key", default="target_encoder", help="checkpoint entry: target_encoder (EMA teacher) or encoder (student)"
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train-clips", type=int, default=2000)
    parser.add_argument("--test-clips", type=int, default=1000)
    parser.add_argument("--probe-depth", type=int, default=1, help="1: V-JEPA 1's single cross-attention block")
    parser.add_argument("--probe-epochs", type=int, default=20)
    parser.add_argument(
        "--positions", action="store_true", help="add fixed sine-cosine position codes to the tokens (not official)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/pretrained-model.json"),
        help="rows already in this file are kept and not measured again (a curve grows run by run)",
    )
    parser.add_argument("--plot", type=Path, help="PNG of accuracy against the number in each encoder's name")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="more result files (read only) to show")
    parser.add_argument(
        "--packaged-steps", type=int, help="draw the packaged model as the 'vjepa' curve's point at this step count"
    )
    args = parser.parse_args()
    models = encoders(args.encoders, args.preset, args.key)
    if args.positions:  # its rows stay apart from the official probe's in a shared --out file
        models = {f"{name} +positions": model for name, model in models.items()}
    probe = ProbeConfig(depth=args.probe_depth, num_heads=3, epochs=args.probe_epochs, batch_size=64, dtype="bf16")
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    extra = [r for path in args.merge for r in json.loads(path.read_text())]
    for task in args.tasks:
        todo = [name for name in models if not any(r["task"] == task and r["encoder"] == name for r in rows)]
        if not todo:
            continue
        train, y_train = task_data(task, "train", args.train_clips, args.frames, args.size)
        test, y_test = task_data(task, "test", args.test_clips, args.frames, args.size)
        classes = int(max(y_train.max(), y_test.max())) + 1
        majority = float(torch.bincount(y_test, minlength=classes).max()) / len(y_test)
        for name in todo:
            torch.manual_seed(0)
            f_train, f_test = features(models[name], train), features(models[name], test)
            if args.positions:
                cfg = models[name].cfg
                grid = (args.frames // cfg.tubelet_size, args.size // cfg.patch_size, args.size // cfg.patch_size)
                codes = sincos_positions(grid, f_train.shape[-1])
                f_train, f_test = f_train + codes, f_test + codes
            result = train_probes(f_train, y_train, f_test, y_test, classes, probe)
            rows.append({"task": task, "encoder": name, "accuracy": result.accuracy, "majority": majority})
            print(f"{task:>10}  {name:>24}  {100 * result.accuracy:.1f}%", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1))
    print(f"\nprobe: {probe}; {args.train_clips} train / {args.test_clips} test clips, {args.frames} frames at "
          f"{args.size} px\n")  # fmt: skip
    keys = {(r["task"], r["encoder"]) for r in rows}
    shown = rows + [r for r in extra if (r["task"], r["encoder"]) not in keys]
    print("| encoder | " + " | ".join(args.tasks) + " |\n|---|" + "---|" * len(args.tasks))
    for name in dict.fromkeys(r["encoder"] for r in shown):
        cells = [next((f"{100 * r['accuracy']:.1f}%" for r in shown if r["task"] == t and r["encoder"] == name), "")
                 for t in args.tasks]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    majority = [next(100 * r["majority"] for r in shown if r["task"] == t) for t in args.tasks]
    print("| majority class | " + " | ".join(f"{c:.1f}%" for c in majority) + " |")
    if args.plot:
        plot(shown, args.tasks, args.plot, args.packaged_steps)


def plot(rows: list[dict], tasks: list[str], path: Path, packaged_steps: int | None = None) -> None:
    """Accuracy against pretraining steps: encoders named ``<objective> <steps>`` form one curve per objective."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6))
    for ax, task in zip(np.atleast_1d(axes), tasks, strict=True):
        curves: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r["task"] != task:
                continue
            label, _, steps = r["encoder"].rpartition(" ")
            if packaged_steps and r["encoder"].startswith("packaged "):
                label, steps = "vjepa", str(packaged_steps)
            if steps.isdigit():
                curves.setdefault(label, []).append((int(steps), 100 * r["accuracy"]))
            elif r["encoder"] == "random init":
                ax.axhline(100 * r["accuracy"], color="grey", ls="--", label="random init (seed 0)")
            elif r["encoder"].startswith("init of the run"):
                ax.axhline(100 * r["accuracy"], color="black", ls=":", label=r["encoder"])
        for label, pts in curves.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("pretraining steps")
        ax.set_ylabel("probe top-1 (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
