"""Can an encoder's feature space guide planning at all? Greedy planning with a *perfect* predictor on franka-reach.

At each step, ``--candidates`` actions (xyz in the L1 ball of 0.075 m) are executed in the simulator from the
current state, rendered and encoded; the action whose frame is closest to the goal image (mean L1 of layer-normed
features, the planner's energy) is executed. Success within 16 steps measures the feature space alone; the
Spearman correlation between energy and the true end-effector distance says how well energy tracks progress.
Compared: raw pixels, a randomly initialised encoder and any pretrained encoders given.

    python benchmarks/planning_ceiling.py runs/demo/pretrain/latest.pt
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from vjepa2.config import encoder_config
from vjepa2.envs import make
from vjepa2.models import VisionTransformer
from vjepa2.plan.cem import project_l1_ball
from vjepa2.plan.mpc import default_preprocess
from vjepa2.plan.world_model import encode_frames
from vjepa2.weights import load_encoder


def features(encoder: VisionTransformer | None, images: list[np.ndarray], resolution: int) -> torch.Tensor:
    """Layer-normed features ``[N, F]`` of uint8 images (raw normalised pixels when ``encoder`` is None)."""
    x = torch.stack([default_preprocess(resolution)(im) for im in images])
    if encoder is None:
        return torch.nn.functional.layer_norm(x.flatten(1), (x[0].numel(),))
    return encode_frames(encoder, x).flatten(1)


def greedy_episode(env, encoder, seed: int, candidates: int, steps: int):
    """One episode; returns (success, per-step Spearman correlations)."""
    env.reset(seed=seed)
    goal, goal_pos, res = env.goal_images()[-1], env.goals[-1].ee_pos, env.image_size
    g = features(encoder, [goal], res)
    corr = []
    for _ in range(steps):
        actions = np.zeros((candidates, 7), np.float32)
        actions[:, :3] = project_l1_ball(torch.randn(candidates, 3) * 0.05, 0.075).numpy()
        state, images, dist = env.get_sim_state(), [], []
        for a in actions:
            env.set_sim_state(state)
            env.simulate(a)
            images.append(env.render())
            dist.append(np.linalg.norm(env.ee_pose()[0] - goal_pos))
        env.set_sim_state(state)
        env.release_sim_state(state)
        energy = (features(encoder, images, res) - g).abs().mean(1).numpy()
        corr.append(spearmanr(energy, dist)[0])
        if env.step(actions[int(np.argmin(energy))])[4]["is_success"]:
            return True, corr
    return False, corr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="*", help="pretraining checkpoints (their target_encoder is used)")
    parser.add_argument("--model", default="vit_tiny")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    env = make("franka-reach", image_size=args.image_size).unwrapped
    torch.manual_seed(0)
    encoders = {"pixels": None, "random init": VisionTransformer(encoder_config(args.model)).eval()}
    encoders |= {path: load_encoder(args.model, path, key="target_encoder") for path in args.checkpoints}
    print("| features | success | Spearman(energy, true distance) | seconds |\n|---|---|---|---|")
    for name, encoder in encoders.items():
        torch.manual_seed(0)
        start, wins, corr = time.time(), 0, []
        for ep in range(args.episodes):
            ok, c = greedy_episode(env, encoder, 1000 + ep, args.candidates, 16)
            wins, corr = wins + ok, corr + c
        print(f"| {name} | {wins}/{args.episodes} | {np.nanmean(corr):.2f} | {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
