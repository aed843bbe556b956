import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from vjepa2.config import ac_predictor_config, encoder_config
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.plan.cem import CEM_TINY
from vjepa2.plan.mpc import (
    LatentPlanner,
    OraclePlanner,
    Planner,
    RandomPlanner,
    evaluate,
    run_episode,
    summarize,
    write_gif,
)
from vjepa2.plan.world_model import WorldModel

SIZE = 64


def render(xy: np.ndarray) -> np.ndarray:
    """A soft blob at ``xy`` in [0, 1]^2 on a 64 x 64 RGB canvas (smooth image distance)."""
    grid = (np.arange(SIZE) + 0.5) / SIZE
    blob = np.exp(-((grid[None, :] - xy[0]) ** 2 + (grid[:, None] - xy[1]) ** 2) / (2 * 0.15**2))
    return (np.stack([blob, 0.5 * blob, 1 - blob], -1) * 255).astype(np.uint8)


class PointEnv:
    """A 2-D point mass with the Franka env's interface: 7-D actions (only dx, dy act), uint8 images, sub-goals."""

    def __init__(self, n_goals: int = 1, tol: float = 0.03) -> None:
        self.n_goals, self.tol = n_goals, tol
        self.pos, self.goals, self.steps = np.zeros(2), [], 0

    def reset(self, seed: int | None = None):
        rng = np.random.default_rng(seed)
        self.pos = rng.uniform(0.2, 0.8, 2)
        self.goals = [rng.uniform(0.2, 0.8, 2) for _ in range(self.n_goals)]
        self.steps = 0
        return self._obs(), self._info()

    def _obs(self):
        state = np.array([*self.pos, 0, 0, 0, 0, 0], dtype=np.float32)
        return {"image": render(self.pos), "state": state}

    def _info(self):
        distance = float(np.linalg.norm(self.pos - self.goals[-1]))
        return {"distance": distance, "is_success": distance < self.tol}

    def step(self, action):
        assert action.shape == (7,) and action.dtype == np.float32
        self.pos = np.clip(self.pos + action[:2], 0, 1)
        self.steps += 1
        return self._obs(), 0.0, False, False, self._info()

    def goal_images(self):
        return [render(g) for g in self.goals]

    def get_state(self):
        return self.pos.copy(), self.steps

    def set_state(self, state):
        self.pos, self.steps = state[0].copy(), state[1]


class Recorder:
    """Records the goal it is asked for; moves towards ``target`` when given, else stays still."""

    def __init__(self, target: np.ndarray | None = None) -> None:
        self.goals, self.target, self.resets = [], target, []

    def reset(self, seed):
        self.resets.append(seed)

    def plan(self, obs, goal):
        self.goals.append(goal)
        action = np.zeros(7, dtype=np.float32)
        if self.target is not None:
            delta = self.target - obs["state"][:2]
            action[:2] = delta * min(1.0, 0.05 / max(np.abs(delta).sum(), 1e-9))
        return action


def test_oracle_beats_random_and_reaches_goals():
    oracle = evaluate(lambda: PointEnv(), lambda env: OraclePlanner(env, CEM_TINY), episodes=3, max_steps=25)
    random = evaluate(PointEnv, RandomPlanner(seed=0), episodes=3, max_steps=25)
    so, sr = summarize(oracle), summarize(random)
    assert so["success_rate"] == 1.0 and so["final_distance"] < 0.03
    assert sr["success_rate"] < so["success_rate"]
    assert [r["seed"] for r in oracle] == [0, 1, 2]
    assert all(r["steps"] <= 25 for r in oracle) and so["seconds_per_action"] > 0


def test_oracle_restores_sim_state():
    env = PointEnv()
    obs, _ = env.reset(seed=4)
    before = env.get_state()
    action = OraclePlanner(env, CEM_TINY).plan(obs, env.goal_images()[0])
    after = env.get_state()
    assert np.array_equal(before[0], after[0]) and before[1] == after[1]
    assert action.shape == (7,) and np.abs(action[:3]).sum() <= 0.075 + 1e-6


def test_random_planner_samples_l1_ball():
    planner = RandomPlanner(radius=0.075, gripper=True, seed=1)
    actions = np.stack([planner.plan({}, None) for _ in range(500)])
    l1 = np.abs(actions[:, :3]).sum(-1)
    assert l1.max() <= 0.075 + 1e-7 and l1.mean() == pytest.approx(0.075 * 3 / 4, rel=0.1)  # E||x||_1 = 3r/4
    assert (actions[:, 3:6] == 0).all() and np.abs(actions[:, 6]).max() <= 1 and actions[:, 6].std() > 0.3
    assert isinstance(planner, Planner)
    closed = RandomPlanner(radius=0.075, gripper=True, seed=1, closed=True)
    assert all(closed.plan({}, None)[6] == 1.0 for _ in range(20))


def test_subgoal_schedule_budgets_and_cap():
    env, planner = PointEnv(n_goals=3), Recorder()
    result = run_episode(env, planner, budgets=[2, 3, 1], seed=5, max_steps=8)
    goals = env.goal_images()
    which = [next(i for i, g in enumerate(goals) if g is seen or np.array_equal(g, seen)) for seen in planner.goals]
    assert which == [0, 0, 1, 1, 1, 2, 2, 2]  # the last sub-goal stays until max_steps
    assert result.steps == 8 and len(result.frames) == 9 and not result.success
    assert planner.resets == [5]
    assert np.array_equal(result.goal_image, goals[-1])
    default = run_episode(env, Recorder(), budgets=[2, 3, 1], seed=5)
    assert default.steps == 6  # max_steps defaults to the sum of the budgets
    with pytest.raises(ValueError, match="budget"):
        run_episode(env, Recorder(), seed=5)


def test_episode_stops_on_success_with_explicit_goals():
    env = PointEnv()
    env.reset(seed=2)
    planner = Recorder(target=env.goals[0])
    result = run_episode(env, planner, goals=[(env.goal_images()[0], 50)], seed=2)
    assert result.success and result.final_distance < 0.03 and result.steps < 50
    assert len(result.frames) == result.steps + 1


@pytest.fixture(scope="module")
def world_model() -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("vit_test"))
    return WorldModel(encoder, ACPredictor(ac_predictor_config("ac_vit_test")), dtype="bf16")


def test_latent_planner_batched_and_deterministic(world_model, monkeypatch):
    env = PointEnv()
    obs, _ = env.reset(seed=0)
    goal = env.goal_images()[0]
    planner = LatentPlanner(world_model, CEM_TINY)
    calls = {"encoder": 0, "predictor": [], "energy": [], "cache": 0}
    hooks = [
        world_model.encoder.register_forward_hook(lambda *a: calls.__setitem__("encoder", calls["encoder"] + 1)),
        world_model.predictor.register_forward_hook(lambda m, args, out: calls["predictor"].append(args[0].shape[0])),
    ]
    energy_fn, cached_rollout = world_model.energy_fn, world_model.cached_rollout

    def counting_energy_fn(*args, **kwargs):
        fn = energy_fn(*args, **kwargs)
        return lambda actions: calls["energy"].append(actions.shape[0]) or fn(actions)

    def counting_cache(*args, **kwargs):
        calls["cache"] += 1
        return cached_rollout(*args, **kwargs)

    monkeypatch.setattr(world_model, "energy_fn", counting_energy_fn)
    monkeypatch.setattr(world_model, "cached_rollout", counting_cache)
    try:
        first = planner.plan(obs, goal)
        second = planner.plan(obs, goal)
    finally:
        for h in hooks:
            h.remove()
    assert calls["energy"] == [CEM_TINY.samples] * (2 * CEM_TINY.iterations)  # one batched call per iteration
    assert calls["cache"] == 2 and calls["predictor"] == []  # the context cached once per plan, no full forward
    assert calls["encoder"] == 3  # goal encoded once (cached), the observation at each step
    assert first.shape == (7,) and np.abs(first[:3]).sum() <= 0.075 + 1e-6
    assert planner.last_info["energies"].shape == (CEM_TINY.iterations, CEM_TINY.samples)
    planner.reset(0)
    np.testing.assert_array_equal(planner.plan(obs, goal), first)
    assert not np.array_equal(first, second)  # the generator moves on between steps


def test_latent_planner_runs_an_episode_and_writes_a_gif(world_model, tmp_path):
    rows = evaluate(PointEnv, LatentPlanner(world_model, CEM_TINY), episodes=1, max_steps=2, gif_dir=tmp_path, gifs=1)
    assert rows[0]["steps"] == 2 and rows[0]["seconds_per_action"] > 0
    gif = Image.open(tmp_path / "episode_000.gif")
    assert gif.n_frames == 3 and gif.size == (4 * SIZE + 4 + 4 * SIZE, 4 * SIZE + 28)  # upscaled 4x, two labels


def test_write_gif_resizes_goal(tmp_path):
    frames = [np.full((32, 48, 3), i * 40, dtype=np.uint8) for i in range(4)]
    path = write_gif(frames, np.zeros((64, 64, 3), dtype=np.uint8), tmp_path / "sub" / "ep.gif", fps=8, scale=1)
    gif = Image.open(path)
    assert gif.n_frames == 4 and gif.size == (48 + 4 + 32, 32 + 28)
    with pytest.raises(ValueError):
        write_gif([], frames[0], tmp_path / "empty.gif")


def test_write_gif_shows_each_frames_subgoal_and_labels(tmp_path):
    """Per-frame goals (sub-goals) are drawn beside their frame; the labels and counter change the pixels."""
    frames = [np.zeros((8, 8, 3), dtype=np.uint8)] * 2
    goals = [np.full((8, 8, 3), 50, dtype=np.uint8), np.full((8, 8, 3), 200, dtype=np.uint8)]
    path = write_gif(frames, goals, tmp_path / "ep.gif", distances=[0.25, float("nan")], scale=4)
    gif = Image.open(path)
    pixels = []
    for i in range(2):
        gif.seek(i)
        pixels.append(np.asarray(gif.convert("RGB")))
    assert pixels[0].shape == (32 + 28, 32 + 4 + 32, 3)
    centre = (14 + 16, 32 + 4 + 16)  # the middle of the goal panel
    assert pixels[0][centre][0] < 100 < pixels[1][centre][0]
    assert (pixels[0][:14] < 128).any()  # "now" / "goal" drawn in black above the panels
    assert not np.array_equal(pixels[0][-14:], pixels[1][-14:])  # step counter (and distance) below
    with pytest.raises(ValueError, match="2 frames"):
        write_gif(frames, goals[:1], tmp_path / "bad.gif")


def test_latent_planner_close_gripper_returns_a_closing_action(world_model):
    env = PointEnv()
    obs, _ = env.reset(seed=0)
    planner = LatentPlanner(world_model, dataclasses.replace(CEM_TINY, close_gripper=0))
    assert planner.plan(obs, env.goal_images()[0])[6] == 1.0
