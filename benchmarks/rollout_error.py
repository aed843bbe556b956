"""Multi-step latent prediction error of world models on held-out trajectories (the rollout-loss ablation).

For each held-out clip (first clip of each trajectory, the training frame step), the world model rolls out from
frame 0 with the recorded actions and the recorded states (teacher states, as in training) and predicts frames
1..n; the table gives the mean L1 between predicted and encoded features at n = 1, 2 and 4 steps, beside the
"nothing moves" baseline (frame 0's features as the prediction for frame n).

    vjepa2 collect --env wall --episodes 50 --seed 500000 --image-size 64 --out runs/wall/heldout
    python benchmarks/rollout_error.py --trajectories runs/wall/heldout \
        --world-models runs/wall/wm/latest.pt runs/wall/wm-tf/latest.pt
"""

from __future__ import annotations

import argparse

import torch

from vjepa2.data.trajectories import TrajectoryClipDataset
from vjepa2.plan.load import load_world_model, read_checkpoint_info
from vjepa2.plan.world_model import WorldModel, layer_norm

STEPS = (1, 2, 4)


@torch.inference_mode()
def rollout_errors(wm: WorldModel, data: TrajectoryClipDataset, steps=STEPS) -> dict[str, float]:
    """Mean L1 of ``n``-step predictions (and of the copy baseline) over the clips of ``data``."""
    sums = {f"{n}-step": 0.0 for n in steps} | {f"copy {n}-step": 0.0 for n in steps}
    for i in range(len(data)):
        clip, actions, states = data[i][:3]  # clip [3, T, H, W], actions [T - 1, A], states [T, S]
        h = wm.encode(clip[None])  # [1, T, HW, D]
        frames = [h[:, 0]]
        for n in range(1, max(steps) + 1):
            hist = torch.stack(frames, dim=1)
            with wm.autocast():
                out = wm.predictor(hist.flatten(1, 2), actions[None, :n], states[None, :n])
            frames.append(layer_norm(out[:, -h.shape[2] :]))
            if n in steps:
                sums[f"{n}-step"] += (frames[n] - h[:, n]).abs().mean().item()
                sums[f"copy {n}-step"] += (h[:, 0] - h[:, n]).abs().mean().item()
    return {k: v / len(data) for k, v in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", nargs="+", required=True, help="held-out trajectory files or folders")
    parser.add_argument("--world-models", nargs="+", required=True, help="train-ac checkpoints to compare")
    args = parser.parse_args()
    print("| world model | rollout loss | " + " | ".join(f"{n}-step L1 (copy)" for n in STEPS) + " |")
    print("|---|---|" + "---|" * len(STEPS))
    for path in args.world_models:
        info = read_checkpoint_info(path)
        wm = load_world_model(path)
        cfg = info.train["data"]
        data = TrajectoryClipDataset(
            args.trajectories,
            frames=max(STEPS) + 1,
            fps=cfg["fps"],
            frame_step=cfg["frame_step"],
            resolution=cfg["resolution"],
            transform=cfg["transform"],
            random_start=False,
        )
        err = rollout_errors(wm, data)
        cells = " | ".join(f"{err[f'{n}-step']:.4f} ({err[f'copy {n}-step']:.4f})" for n in STEPS)
        print(f"| {path} | {info.train['optim']['rollout_steps']} steps | {cells} |", flush=True)


if __name__ == "__main__":
    main()
