"""Planning protocols (LeWM / DINO-WM goals, latched success, action chunks), generic CEM and ``vjepa2 eval-plan``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium")

from vjepa2.cli import COMMANDS, main  # noqa: E402
from vjepa2.envs.wall import WallEnv  # noqa: E402
from vjepa2.envs.wall import proprio_step as wall_step  # noqa: E402
from vjepa2.plan.cem import CEMConfig, constrain, plan  # noqa: E402
from vjepa2.plan.envs import PlanningEnv, split_chunk  # noqa: E402
from vjepa2.plan.protocol import (  # noqa: E402
    Episode,
    baseline_planners,
    build_episodes,
    chunk_pose_fn,
    env_episodes,
    get_protocol,
    run_protocol,
    trajectory_episodes,
    uniform_sampler,
)

TINY = CEMConfig(samples=32, iterations=3, topk=4)


def test_lewm_goal_is_the_state_25_steps_ahead():
    states = [np.stack([np.full(n, j), np.arange(n)], 1).astype(float) for j, n in enumerate((30, 60, 26, 10))]
    episodes = trajectory_episodes(states, 40, offset=25, seed=7)
    assert [ep.seed for ep in episodes] == list(range(7, 47))
    for ep in episodes:
        j, t = int(ep.start[0]), int(ep.start[1])
        assert ep.goal[0] == j and ep.goal[1] == t + 25 and t <= len(states[j]) - 26
    assert len({(ep.start[0], ep.start[1]) for ep in episodes}) == 40  # distinct draws
    assert {int(ep.start[0]) for ep in episodes} <= {0, 1, 2}  # the 10-step trajectory is too short
    again = trajectory_episodes(states, 40, offset=25, seed=7)
    assert all(np.array_equal(a.start, b.start) for a, b in zip(episodes, again, strict=True))
    with pytest.raises(ValueError, match="longer than the goal offset"):
        trajectory_episodes([states[3]], 1, offset=25)


def test_protocols_and_dino_wm_wall_goals():
    lewm = get_protocol("lewm", "wall")
    assert (lewm.goals, lewm.offset, lewm.budget, lewm.episodes) == ("trajectory", 25, 50, 50)
    assert get_protocol("dinowm", "two-rooms").goals == "env" and get_protocol("dinowm", "pusht").goals == "trajectory"
    with pytest.raises(ValueError, match="dinowm"):
        get_protocol("jepa-wms", "wall")
    for ep in env_episodes(WallEnv(image_size=16), 6, seed=3):
        assert (ep.start[0] - 32) * (ep.goal[0] - 32) < 0  # opposite rooms
    held_out = build_episodes(WallEnv(image_size=16), lewm, 3, seed=0)
    assert all(ep.source.startswith("trajectory") for ep in held_out)


def test_chunks_run_frameskip_steps_and_latch_success():
    """A chunk that passes the goal and overshoots it still counts as a success."""
    start, goal = np.array([10.0, 10.0, 32.0, 30.0]), np.array([17.0, 10.0, 32.0, 30.0])
    penv = PlanningEnv(WallEnv(image_size=16), [Episode(0, start, goal, "test")], frameskip=5)
    penv.reset(seed=0)
    _, _, _, _, info = penv.step(np.tile([1.8, 0.0], 5))  # 5 x 3.6 px: passes x = 17, ends at 28
    assert info["is_success"] and info["distance"] == pytest.approx(11.0)
    with pytest.raises(ValueError, match="does not split"):
        split_chunk(np.zeros(7), 5)
    with pytest.raises(KeyError, match="no episode"):
        penv.reset(seed=1)


def test_true_state_oracle_reaches_two_rooms_goals_and_beats_random():
    env = WallEnv(image_size=16)
    episodes = build_episodes(env, get_protocol("lewm", "wall"), 6, seed=0)
    planners = baseline_planners(["random", "oracle"], env, frameskip=5, oracle_cem=TINY)
    rows = {n: run_protocol("wall", p, episodes, budget=50, frameskip=5, image_size=16) for n, p in planners.items()}
    oracle, random = (sum(r["success"] for r in rows[n]) for n in ("oracle", "random"))
    assert oracle >= 5 and oracle > random
    assert all(r["steps"] % 5 == 0 and r["steps"] <= 50 for r in rows["oracle"])
    distance = {n: np.mean([r["final_distance"] for r in rows[n]]) for n in rows}
    assert distance["oracle"] < distance["random"]


@pytest.mark.parametrize(("variant", "norm"), [("box", np.inf), ("l1", 1), ("l2", 2)])
def test_generic_cem_constraints_per_sub_action(variant, norm):
    cfg = CEMConfig(variant=variant, action_dim=6, group=2, radius=0.5)
    x = constrain(torch.randn(100, 2, 6) * 3, cfg)
    assert x.shape == (100, 2, 6)
    assert torch.linalg.vector_norm(x.unflatten(-1, (3, 2)), ord=norm, dim=-1).max() <= 0.5 + 1e-5


def test_generic_cem_finds_a_quadratic_optimum_and_validates():
    target = torch.tensor([0.3, -0.6])
    cfg = CEMConfig(samples=200, iterations=8, topk=20, variant="box", action_dim=2, radius=1.0)
    best, _ = plan(lambda a: ((a[:, 0] - target) ** 2).sum(-1), cfg)
    assert best.shape == (1, 2) and torch.allclose(best[0], target, atol=0.05)
    with pytest.raises(ValueError, match="7-D Franka"):
        CEMConfig(action_dim=2)
    with pytest.raises(ValueError, match="divides"):
        CEMConfig(variant="l2", action_dim=5, group=2)


def test_env_cem_maps_paper_and_notebook_onto_the_env_action_set():
    from vjepa2.plan.cem import CEM_NOTEBOOK, CEM_PAPER
    from vjepa2.plan.protocol import env_cem

    env = WallEnv(image_size=16)
    paper, notebook = env_cem(CEM_PAPER, env, 5), env_cem(CEM_NOTEBOOK, env, 5)
    assert (paper.variant, paper.radius, paper.action_dim, paper.group) == ("l2", 1.8, 10, 2)
    assert (notebook.variant, notebook.radius, notebook.action_dim) == ("box", 1.8, 10)
    assert (notebook.momentum_mean, paper.momentum_mean) == (0.15, 0.0)


def test_uniform_sampler_and_chunked_pose_fn():
    env = WallEnv(image_size=16)
    rng = np.random.default_rng(0)
    draws = np.stack([uniform_sampler(env, 5)(rng) for _ in range(200)]).reshape(-1, 2)
    assert np.linalg.norm(draws, axis=1).max() <= 1.8 + 1e-6 and np.linalg.norm(draws, axis=1).mean() > 0.9
    pose_fn = chunk_pose_fn(wall_step, 5, 2)
    actions = torch.arange(10.0).view(1, 10)
    expected = torch.tensor([[1.0, 2.0]]) + 2 * actions.view(5, 2).sum(0)
    assert torch.allclose(pose_fn(torch.tensor([[1.0, 2.0]]), actions), expected)


# ---------------------------------------------------------------- eval-plan


def _checkpoint(path: Path, action_dim: int, state_dim: int) -> Path:
    """A random tiny world model in the ``train-ac`` checkpoint layout."""
    from vjepa2.config import ac_predictor_config, encoder_config
    from vjepa2.config_io import to_dict
    from vjepa2.models import ACPredictor, VisionTransformer

    enc = VisionTransformer(encoder_config("vit_test"))
    pred = ACPredictor(ac_predictor_config("ac_vit_test", action_dim=action_dim, state_dim=state_dim))
    torch.save({"encoder": enc.state_dict(), "predictor": pred.state_dict(), "encoder_config": to_dict(enc.cfg),
                "predictor_config": to_dict(pred.cfg), "step": 0}, path)  # fmt: skip
    return path


def test_eval_plan_prints_the_table_and_writes_json(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "wm.pt", action_dim=10, state_dim=2)
    out = tmp_path / "eval.json"
    argv = ["eval-plan", "--env", "two-rooms", "--world-model", str(ckpt), "--episodes", "2", "--budget", "10"]
    assert main([*argv, "--cem", "tiny", "--dtype", "fp32", "--device", "cpu", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| planner | success | final distance (px) | env steps | s / action | CEM |" in text
    for row in ("| latent | ", "| random | ", "| oracle | ", "32x3 top-4 H=1 l2<=1.8 x5", "published (lewm"):
        assert row in text
    assert "budget 10 env steps, frameskip 5" in text
    record = json.loads(out.read_text())
    assert record["frameskip"] == 5 and record["protocol"]["offset"] == 25 and record["cem"]["action_dim"] == 10
    results = {r["planner"]: r for r in record["results"]}
    assert list(results) == ["latent", "random", "oracle"]
    starts = [[e["start"] for e in r["episode_rows"]] for r in results.values()]
    assert starts[0] == starts[1] == starts[2]  # every planner gets the same episodes
    assert "eval-plan" in COMMANDS


def test_proprio_planner_moves_the_agent_to_the_goal_position(tmp_path, capsys):
    """DINO-WM's proprio term reaches the goal's position without any visual skill: the protocol env hands the
    planner ``obs["goal_state"]``, and the proprio-only reference beats random actions on Two-Rooms."""
    start, goal = np.array([10.0, 10.0, 32.0, 30.0]), np.array([17.0, 10.0, 32.0, 30.0])
    obs, _ = PlanningEnv(WallEnv(image_size=16), [Episode(0, start, goal, "test")]).reset(seed=0)
    assert np.allclose(obs["goal_state"], goal)
    ckpt = _checkpoint(tmp_path / "wm.pt", action_dim=10, state_dim=2)
    out = tmp_path / "eval.json"
    argv = ["eval-plan", "--env", "wall", "--world-model", str(ckpt), "--episodes", "6", "--cem", "tiny"]
    argv += ["--baselines", "random,proprio", "--proprio-weight", "1", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    assert "proprio term only" in capsys.readouterr().out
    results = {r["planner"]: r for r in json.loads(out.read_text())["results"]}
    success = {name: sum(e["success"] for e in r["episode_rows"]) for name, r in results.items()}
    assert success["proprio"] >= 5 > success["random"]
    from vjepa2.config import ac_predictor_config, encoder_config
    from vjepa2.models import ACPredictor, VisionTransformer
    from vjepa2.plan.mpc import LatentPlanner
    from vjepa2.plan.world_model import WorldModel

    wm = WorldModel(VisionTransformer(encoder_config("vit_test")), ACPredictor(ac_predictor_config("ac_vit_test")))
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="goal_state"):
        LatentPlanner(wm, TINY, proprio_weight=1.0).plan({"image": image, "state": np.zeros(7, np.float32)}, image)


def test_eval_plan_rejects_a_mismatched_model_and_unknown_envs(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "franka.pt", action_dim=7, state_dim=7)
    assert main(["eval-plan", "--env", "wall", "--world-model", str(ckpt), "--device", "cpu"]) == 2
    assert "7-D actions and 7-D states" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval-plan", "--env", "franka-reach", "--world-model", str(ckpt)])
    assert "choose from" in capsys.readouterr().err
