"""``vjepa2 demo``: the world model in a box, on 2 CPU cores.

1. collect Franka reach trajectories with a noisy scripted policy (pybullet, offline);
2. pretrain a tiny encoder on their frames with the V-JEPA objective (stage 1);
3. train the action-conditioned predictor on the frozen encoder (stage 2, teacher forcing + rollout);
4. plan toward goal images with CEM + MPC, beside random actions, and print the success table;
5. write the plots: loss curves, an energy landscape, a GIF of an episode next to its goal.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import ModuleType

from vjepa2.train.ac import train_ac
from vjepa2.train.ac_config import ACDataSection, ACModelSection, ACOptimSection, ACRunSection, ACTrainConfig
from vjepa2.train.pretrain import train
from vjepa2.train.pretrain_config import DataSection, ModelSection, OptimSection, PretrainConfig, RunSection

# Patch 8: an 8 x 8 token grid at 64 px. With 16 px patches (4 x 4) the arm moves inside one token and a pretrained
# encoder's energies barely track it (a perfect predictor planned 6/10 reach episodes on it, 10/10 with patch 8).
ENCODER = "vit_tiny_p8"


def pretrain_config(out: Path, data: Path, minutes: float, resolution: int) -> PretrainConfig:
    return PretrainConfig(
        model=ModelSection(encoder=ENCODER, predictor="vit_tiny"),
        data=DataSection(datasets=(str(data),), frames=8, crop=resolution, batch_size=32, num_workers=1, ipe=100),
        optim=OptimSection(
            steps=3000, warmup=200, start_lr=2e-4, lr=1e-3, final_lr=1e-3, ipe_scale=1.0, ema=(0.996, 0.9999)
        ),
        run=RunSection(
            out=str(out), dtype="bf16", device="cpu", log_every=20, checkpoint_every=200, max_minutes=minutes
        ),
    )


def ac_config(out: Path, data: Path, encoder: Path, minutes: float, resolution: int) -> ACTrainConfig:
    return ACTrainConfig(
        model=ACModelSection(
            encoder=ENCODER, encoder_weights=str(encoder), predictor="ac_vit_tiny", action_scale=10.0, residual=True
        ),
        data=ACDataSection(
            trajectories=(str(data),), frames=8, resolution=resolution, transform="resize", batch_size=16, num_workers=1
        ),
        # ~0.55 s/step here (64 tokens a frame): 1000 steps anneal inside 11 minutes (a run cut by the time limit
        # before its LR decays plans far worse); a higher LR adds more noise than the change to learn
        optim=ACOptimSection(steps=1000, warmup=50, anneal=250, start_lr=3e-5, lr=3e-4),
        run=ACRunSection(
            out=str(out), dtype="bf16", device="cpu", log_every=20, checkpoint_every=200, max_minutes=minutes
        ),
    )


def plot_losses(runs: dict[str, Path], path: Path) -> Path:
    """One panel per run of its ``metrics.jsonl`` loss curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vjepa2.train.metrics import read_metrics

    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5))
    for ax, (name, run) in zip(axes, runs.items(), strict=True):
        records = read_metrics(run / "metrics.jsonl")
        ax.plot([r["step"] for r in records], [r["loss"] for r in records])
        ax.set(title=name, xlabel="step", ylabel="loss")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def invoke(command: ModuleType, argv: list[str]) -> int:
    """Run a command module (``add_args`` + ``run``) on ``argv``, as ``vjepa2 COMMAND argv`` would."""
    parser = argparse.ArgumentParser()
    command.add_args(parser)
    return int(command.run(parser.parse_args(argv)) or 0)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="folder for data, checkpoints and plots")
    parser.add_argument("--episodes", type=int, default=300, help="trajectories to collect")
    parser.add_argument("--pretrain-minutes", type=float, default=4.5)
    parser.add_argument("--ac-minutes", type=float, default=11.0)
    parser.add_argument("--plan-episodes", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=64, help="camera images and model input (pixels)")


def run(args: argparse.Namespace) -> int:
    from vjepa2.commands import energy_landscape, plan
    from vjepa2.envs.collect import collect

    out, start = Path(args.out), time.monotonic()
    data = out / "data"
    collect("franka-reach", args.episodes, data, policy="scripted", noise=0.5, image_size=args.resolution)
    pre = out / "pretrain"
    if not (pre / "latest.pt").exists():
        train(pretrain_config(pre, data, args.pretrain_minutes, args.resolution))
    ac = out / "world-model"
    if not (ac / "latest.pt").exists():
        train_ac(ac_config(ac, data, pre / "latest.pt", args.ac_minutes, args.resolution))
    plot = ["--world-model", str(ac / "latest.pt")]
    invoke(plan, ["--env", "franka-reach", *plot, "--episodes", str(args.plan_episodes), "--cem", "cpu",
         "--baselines", "random", "--gif", str(out / "episode.gif"), "--out", str(out / "plan.json")])  # fmt: skip
    invoke(energy_landscape, [*plot, "--env", "franka-reach", "--seed", "0", "--out", str(out / "landscape.png")])
    print(f"loss curves: {plot_losses({'stage 1: V-JEPA': pre, 'stage 2: AC predictor': ac}, out / 'losses.png')}")
    minutes = (time.monotonic() - start) / 60
    (out / "demo.json").write_text(json.dumps({"minutes": minutes}))
    print(f"demo done in {minutes:.1f} min; everything is in {out}")
    return 0
