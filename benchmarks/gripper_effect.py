"""Does a Franka world model predict what the gripper does? Predicted against true feature changes of one step.

From the first frame of held-out episodes, three one-step actions are taken in the simulator and rolled out by the
world model: ``hold`` (gripper delta +1, no motion), ``open`` (gripper delta -1, no motion: with the cube in the
gripper, as in reach-with-object, it drops) and ``move`` (``--move`` metres along x, gripper +1). For each it
compares the encoder's features of the true next frames with each other and the world model's predictions with each
other (mean absolute difference, the planning energy's metric). A world model that "sees" the gripper predicts an
``open - hold`` difference of the size of the true one; the ``move - hold`` row is the scale of an arm motion.

    python benchmarks/gripper_effect.py runs/rwo-1200/wm/latest.pt
    python benchmarks/gripper_effect.py vjepa2_ac_tiny_reach --env franka-reach-with-object --episodes 10
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vjepa2.plan.load import frame_preprocess, load_world_model, pick_transform, read_checkpoint_info
from vjepa2.plan.mpc import Preprocess
from vjepa2.plan.protocol import HELD_OUT_SEED
from vjepa2.plan.tabletop import make_env
from vjepa2.plan.world_model import WorldModel


def actions(move: float) -> dict[str, np.ndarray]:
    """The three probe actions ``[7]``: hold, open, move."""
    rows = {"hold": [0, 0, 0, 0, 0, 0, 1], "open": [0, 0, 0, 0, 0, 0, -1], "move": [move, 0, 0, 0, 0, 0, 1]}
    return {name: np.array(row, dtype=np.float32) for name, row in rows.items()}


def probe(
    wm: WorldModel, preprocess: Preprocess, env_name: str, seed: int, move: float
) -> dict[str, tuple[torch.Tensor, torch.Tensor, bool]]:
    """``{action: (true next features [HW, D], predicted [HW, D], cube held after the step)}`` from episode ``seed``."""
    env = make_env(env_name, wm.predictor.cfg.img_size)
    obs, _ = env.reset(seed=seed)
    z0 = wm.encode(preprocess(obs["image"])[None])
    s0 = torch.as_tensor(obs["state"], dtype=torch.float32).view(1, 1, -1)
    probes = actions(move)
    preds = wm.rollout(z0, s0, torch.as_tensor(np.stack(list(probes.values())))[:, None]).float()  # [3, HW, D]
    out = {}
    for (name, action), pred in zip(probes.items(), preds, strict=True):
        env.reset(seed=seed)  # the same first frame for every probe action
        nxt, *_ = env.step(action)
        true = wm.encode(preprocess(nxt["image"])[None])[0, 0].float()
        out[name] = (true, pred.reshape(true.shape), bool(env.sim.snapshot()["grasped"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("world_model", help="train-ac checkpoint or packaged world model name")
    parser.add_argument("--env", default="franka-reach-with-object")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--move", type=float, default=0.04, help="x displacement of the move action (m)")
    args = parser.parse_args()
    wm = load_world_model(args.world_model)
    info = read_checkpoint_info(args.world_model)
    preprocess = frame_preprocess(pick_transform("auto", info), wm.predictor.cfg.img_size)

    def l1(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().mean())

    print(f"{args.world_model} on {args.env}, first frames of episodes {args.seed}.. (mean |feature difference|)\n")
    print("| episode | held after open / hold | open-hold: true | predicted | move-hold: true | predicted |")
    print("|---|---|---|---|---|---|")
    rows = []
    for seed in range(args.seed, args.seed + args.episodes):
        p = probe(wm, preprocess, args.env, seed, args.move)
        row = [l1(p["open"][i], p["hold"][i]) for i in (0, 1)] + [l1(p["move"][i], p["hold"][i]) for i in (0, 1)]
        rows.append(row)
        held = f"{'yes' if p['open'][2] else 'no'} / {'yes' if p['hold'][2] else 'no'}"
        print(f"| {seed} | {held} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    mean = np.mean(rows, axis=0)
    print("| **mean** | | " + " | ".join(f"**{v:.4f}**" for v in mean) + " |")
    print(f"\npredicted / true: open {mean[1] / mean[0]:.2f}, move {mean[3] / mean[2]:.2f}")


if __name__ == "__main__":
    main()
