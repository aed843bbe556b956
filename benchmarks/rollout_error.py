"""Multi-step latent prediction error of world models on held-out trajectories (the rollout-loss ablation).

For each held-out clip (first clip of each trajectory, the training frame step), the world model rolls out from
frame 0 with the recorded actions and the recorded states (teacher states, as in training) and predicts frames
1..n; the table gives the mean L1 between predicted and encoded features at n = 1, 2 and 4 steps, beside the
"nothing moves" baseline (frame 0's features as the prediction for frame n). "Action AUC" asks whether the model
tells actions apart, which is what planning needs: for each clip, the energy (mean L1 to the true next frame's
features) of the recorded first action against the first actions of all other clips; the AUC is the fraction of
those with a higher energy (ties count half): 1.0 ranks the true action first every time, 0.5 is chance (the copy
baseline, which ignores actions, scores exactly 0.5).

    vjepa2 collect --env wall --episodes 50 --seed 500000 --image-size 64 --out runs/wall/heldout
    python benchmarks/rollout_error.py --trajectories runs/wall/heldout \
        --world-models runs/wall/wm/latest.pt runs/wall/wm-tf/latest.pt
"""

from __future__ import annotations

import argparse

import torch

from vjepa2.data.trajectory_dataset import TrajectoryClipDataset
from vjepa2.models.encode import layer_norm
from vjepa2.plan.load import load_world_model, read_checkpoint_info
from vjepa2.plan.world_model import WorldModel

STEPS = (1, 2, 4)


@torch.inference_mode()
def _rollout(optim: dict) -> str:
    """The rollout setting of a run (older runs stored rollout_steps, 0 meaning no rollout loss)."""
    if not optim.get("rollout_loss", optim.get("rollout_steps", 1) > 0):
        return "teacher forcing only"
    return f"{optim.get('auto_steps', optim.get('rollout_steps'))} rollout steps"


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


@torch.inference_mode()
def action_auc(wm: WorldModel, data: TrajectoryClipDataset) -> float:
    """Mean over clips of P(energy of another clip's first action > energy of the recorded one), ties half."""
    items = [data[i][:3] for i in range(len(data))]
    firsts = torch.stack([actions[0] for _, actions, _ in items])  # [N, A]
    aucs = []
    for i, (clip, _, states) in enumerate(items):
        h = wm.encode(clip[None, :, :2])  # [1, 2, HW, D]
        n = len(items)
        pred = wm.predict_next(h[:, :1].expand(n, -1, -1, -1), firsts[:, None], states[None, :1].expand(n, -1, -1))
        energy = (pred - h[:, 1]).abs().mean((1, 2))  # [N]
        others = torch.cat([energy[:i], energy[i + 1 :]])
        aucs.append(((others > energy[i]).float() + 0.5 * (others == energy[i]).float()).mean().item())
    return sum(aucs) / len(aucs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", nargs="+", required=True, help="held-out trajectory files or folders")
    parser.add_argument("--world-models", nargs="+", required=True, help="train-ac checkpoints to compare")
    args = parser.parse_args()
    print("| world model | rollout loss | " + " | ".join(f"{n}-step L1 (copy)" for n in STEPS) + " | action AUC |")
    print("|---|---|" + "---|" * (len(STEPS) + 1))
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
        auc = action_auc(wm, data)
        print(f"| {path} | {_rollout(info.train['optim'])} | {cells} | {auc:.3f} |", flush=True)


if __name__ == "__main__":
    main()
