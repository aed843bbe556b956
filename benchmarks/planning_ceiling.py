"""Can an encoder's feature space guide planning at all? Greedy planning with a *perfect* predictor.

At each step, ``--candidates`` actions are executed in the simulator from the current state, rendered and encoded;
the one whose frame is closest to the goal image (mean L1 of layer-normed features, the planner's energy) is
executed. Success measures the feature space alone; the Spearman correlation between energy and the true distance
to the goal says how well energy tracks progress. Compared: raw pixels, a randomly initialised encoder and any
pretrained encoders given.

- ``franka-reach`` and the object tasks (``franka-grasp``, ``franka-reach-with-object``, ``franka-pick-and-place``
  with its three sub-goal images): actions are xyz deltas in the L1 ball of 0.075 m (plus a gripper delta in
  [-1, 1] for the object tasks); the task's step budgets; env seeds 1000...
- ``wall`` / ``pusht``: LeWM's protocol (goal 25 steps ahead in a held-out trajectory, 50 env steps); a candidate
  is a chunk of ``--frameskip`` random env actions.

    python benchmarks/planning_ceiling.py runs/demo/pretrain/latest.pt --model vit_tiny_p8
    python benchmarks/planning_ceiling.py packaged --model vjepa2_tiny          # the shipped encoder
    python benchmarks/planning_ceiling.py --env franka-grasp --horizon 2 --baselines pixels
    python benchmarks/planning_ceiling.py runs/wall/pretrain/latest.pt --env wall --heldout runs/wall/heldout
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from vjepa2.config import encoder_config
from vjepa2.data.transforms import gaussian_blur
from vjepa2.envs import make
from vjepa2.models import VisionTransformer
from vjepa2.models.encode import encode_frames
from vjepa2.plan.cem import project_l1_ball
from vjepa2.plan.energy import smoothed_l1_energy
from vjepa2.plan.envs import PlanningEnv
from vjepa2.plan.mpc import default_preprocess
from vjepa2.plan.protocol import build_episodes, get_protocol, load_true_states, make_benchmark_env
from vjepa2.weights import load_encoder


def features(
    encoder: VisionTransformer | None, images: list[np.ndarray], resolution: int, input_blur: float = 0.0
) -> torch.Tensor:
    """Layer-normed token features ``[N, HW, D]`` of uint8 images (raw normalised pixels, ``D = 3``, when
    ``encoder`` is None); ``input_blur`` > 0 Gaussian-blurs the images first (sigma / image width)."""
    x = torch.stack([default_preprocess(resolution)(im) for im in images])
    if input_blur > 0:
        x = gaussian_blur(x, input_blur * x.shape[-1])
    if encoder is None:
        return torch.nn.functional.layer_norm(x.flatten(1), (x[0].numel(),)).view_as(x).flatten(2).transpose(1, 2)
    return encode_frames(encoder, x).flatten(1, 2)


def greedy_step(env, state, set_state, encoder, goal, candidates: list, distance, args) -> tuple[list, float]:
    """Try every candidate (a list of env actions) from ``state`` (the current one; ``set_state`` restores it);
    returns the best one by energy and the Spearman correlation of energy and true distance over the candidates."""
    images, dist = [], []
    for chunk in candidates:
        set_state(state)
        for a in chunk:
            env.simulate(a)
        images.append(env.render())
        dist.append(distance())
    set_state(state)
    feats = features(encoder, images, env.image_size, args.input_blur)
    energy = smoothed_l1_energy(feats, goal, args.blur).numpy()
    return candidates[int(np.argmin(energy))], spearmanr(energy, dist)[0]


def franka_episodes(encoder, args) -> tuple[int, list[float]]:
    """Any Franka tabletop task: greedy toward each goal image (sub-goals in turn, with the task's step budgets);
    object tasks sample the gripper too. A candidate is ``--horizon`` actions judged by the frame after the last;
    its first action is executed (MPC). Env seeds 1000...; the true distance is ``oracle_cost`` of the sub-goal."""
    from vjepa2.envs import ENV_TASKS, ENVS, TASKS
    from vjepa2.envs.franka_tasks import subgoal_index

    task = TASKS[ENV_TASKS[ENVS[args.env]]]
    camera = zoomed_camera(args.zoom)
    env, wins, corr = make(args.env, image_size=args.image_size, pregrasp=args.pregrasp, camera=camera).unwrapped, 0, []
    for ep in range(args.episodes):
        env.reset(seed=1000 + ep)
        goals = [features(encoder, [im], env.image_size, args.input_blur) for im in env.goal_images()]
        schedule = [g for g, budget in zip(goals, env.subgoal_steps, strict=True) for _ in range(budget)]
        for t, goal in enumerate(schedule):
            stage = subgoal_index(env.task, t, env.pregrasp)
            n = args.candidates * args.horizon
            xyz = project_l1_ball(torch.randn(n, 3) * 0.05, 0.075)
            grip = torch.rand(n, 1) * 2 - 1 if task.name != "reach" else torch.zeros(n, 1)
            actions = torch.cat([xyz, torch.zeros(n, 3), grip], 1).numpy().astype(np.float32)
            cands = list(actions.reshape(args.candidates, args.horizon, -1))
            state = env.get_state()
            distance = lambda i=stage: env.oracle_cost(goal_index=i)  # noqa: E731
            chunk, c = greedy_step(env, state, env.set_state, encoder, goal, cands, distance, args)
            env.release_state(state)
            corr.append(c)
            if env.step(chunk[0])[4]["is_success"]:
                wins += 1
                break
    return wins, corr


def benchmark_episodes(encoder, args) -> tuple[int, list[float]]:
    env = make_benchmark_env(args.env, args.image_size)
    protocol = get_protocol("lewm", args.env)
    states = load_true_states([args.heldout]) if args.heldout else None
    episodes = build_episodes(env, protocol, args.episodes, 0, states)
    penv = PlanningEnv(env, episodes, args.frameskip)  # reset to an episode; success latched over a chunk
    rng, wins, corr = np.random.default_rng(0), 0, []
    for ep in episodes:
        penv.reset(seed=ep.seed)
        goal = features(encoder, [env.render_state(ep.goal)], args.image_size, args.input_blur)
        for _ in range(protocol.budget // args.frameskip):
            cands = [[env.random_action(rng) for _ in range(args.frameskip)] for _ in range(args.candidates)]
            distance = lambda g=ep.goal: env.distance(env.get_state(), g)  # noqa: E731
            chunk, c = greedy_step(env, env.get_state(), env.set_state, encoder, goal, cands, distance, args)
            corr.append(c)
            if penv.step(np.concatenate(chunk))[4]["is_success"]:
                wins += 1
                break
    return wins, corr


def zoomed_camera(zoom: float):
    """The Franka camera with its field of view narrowed ``zoom`` times and aimed at the middle of the object area
    (same eye; the cube spans about ``3 * zoom`` pixels at 64 px), or None (the default camera) for ``zoom == 1``."""
    from vjepa2.envs.franka import Camera

    if zoom == 1:
        return None
    fov = 2 * math.degrees(math.atan(math.tan(math.radians(Camera.fov / 2)) / zoom))
    return Camera(target=(0.5, 0.0, 0.05), fov=fov)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "checkpoints", nargs="*", help="pretraining checkpoints (their target_encoder), or 'packaged' (shipped weights)"
    )
    parser.add_argument("--env", default="franka-reach", help="a Franka env (franka-grasp, ...) or wall / pusht")
    parser.add_argument("--model", default="vit_tiny", help="encoder preset of the checkpoints")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--frameskip", type=int, default=5, help="env actions per candidate (benchmark envs)")
    parser.add_argument("--horizon", type=int, default=1, help="Franka: actions per candidate, the first executed")
    parser.add_argument(
        "--baselines", default="pixels,random", help="comma-separated rows before the checkpoints ('' for none)"
    )
    parser.add_argument("--heldout", help="held-out trajectories for the benchmark envs' goals (else rolled out)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--pregrasp", action="store_true", help="Franka grasp tasks: pre-grasp goal images first")
    parser.add_argument("--zoom", type=float, default=1.0, help="Franka: narrow the camera's view this many times")
    parser.add_argument("--blur", type=float, default=0.0, help="smoothed energy: sigma / frame width (0: official L1)")
    parser.add_argument("--input-blur", type=float, default=0.0, help="blur the images before encoding (sigma / width)")
    args = parser.parse_args()
    if args.horizon < 1:
        parser.error(f"--horizon must be >= 1, got {args.horizon}")
    if args.zoom <= 0:
        parser.error(f"--zoom must be > 0, got {args.zoom}")
    torch.manual_seed(0)
    random_init = VisionTransformer(encoder_config(args.model)).eval()  # built first: the same weights as before
    baselines = {"pixels": ("pixels", None), "random": ("random init", random_init)}
    chosen = [b for b in args.baselines.split(",") if b]
    if set(chosen) - set(baselines):
        parser.error(f"unknown --baselines {args.baselines!r}; choose from {sorted(baselines)}")
    encoders = dict(baselines[b] for b in chosen)
    for path in args.checkpoints:
        if path == "packaged":
            encoders[f"packaged {args.model}"] = load_encoder(args.model, pretrained=True).eval()
        else:
            encoders[path] = load_encoder(args.model, path, key="target_encoder").eval()
    run = franka_episodes if args.env.startswith("franka-") else benchmark_episodes
    print(
        f"{args.env}, {args.model}, {args.candidates} candidates/step, {args.episodes} episodes, "
        f"energy blur {args.blur}, input blur {args.input_blur}, pregrasp {args.pregrasp}, horizon {args.horizon}, "
        f"zoom {args.zoom:g}"
    )
    print("| features | success | Spearman(energy, true distance) | seconds |\n|---|---|---|---|")
    for name, encoder in encoders.items():
        torch.manual_seed(0)
        start = time.time()
        wins, corr = run(encoder, args)
        print(f"| {name} | {wins}/{args.episodes} | {np.nanmean(corr):.2f} | {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
