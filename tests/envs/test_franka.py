"""The simulated Franka tabletop: determinism, pose convention, control accuracy, task rules, goals, oracle."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pybullet")
gym = pytest.importorskip("gymnasium")

from vjepa2.data.poses import compute_new_pose, euler_to_matrix, matrix_to_euler, poses_to_diffs  # noqa: E402
from vjepa2.envs import ENVS, TASKS, make  # noqa: E402
from vjepa2.envs.franka import FrankaEnv  # noqa: E402
from vjepa2.envs.franka_tasks import (  # noqa: E402
    random_action,
    sample_layout,
    scripted_action,
    subgoal_index,
)


@pytest.fixture(scope="module")
def envs():
    made: dict[str, FrankaEnv] = {}

    def get(task: str) -> FrankaEnv:
        if task not in made:
            made[task] = FrankaEnv(task=task, image_size=48)
        return made[task]

    yield get
    for env in made.values():
        env.close()


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_euler_is_extrinsic_xyz_and_round_trips():
    rng = np.random.default_rng(0)
    e = rng.uniform([-np.pi, -1.5, -np.pi], [np.pi, 1.5, np.pi], size=(64, 3))
    mats = euler_to_matrix(e)
    explicit = np.stack([_rz(c) @ _ry(b) @ _rx(a) for a, b, c in e])  # extrinsic x, then y, then z
    np.testing.assert_allclose(mats, explicit, atol=1e-12)
    np.testing.assert_allclose(matrix_to_euler(mats, wrap_roll=False), e, atol=1e-9)
    wrapped = matrix_to_euler(mats, wrap_roll=True)
    assert np.all((wrapped[:, 0] >= 0) & (wrapped[:, 0] < 2 * np.pi))
    np.testing.assert_allclose(euler_to_matrix(wrapped), mats, atol=1e-12)


def test_compute_new_pose_composes_on_the_left_and_inverts_poses_to_diffs():
    rng = np.random.default_rng(1)
    states = np.concatenate([rng.normal(size=(6, 3)), rng.uniform(-1, 1, (6, 3)), rng.uniform(0, 1, (6, 1))], 1)
    actions = poses_to_diffs(states)
    nxt = compute_new_pose(states[:-1], actions, wrap_roll=True)
    np.testing.assert_allclose(euler_to_matrix(nxt[:, 3:6]), euler_to_matrix(states[1:, 3:6]), atol=1e-9)
    np.testing.assert_allclose(nxt[:, [0, 1, 2, 6]], states[1:, [0, 1, 2, 6]], atol=1e-12)
    r = euler_to_matrix(actions[0, 3:6]) @ euler_to_matrix(states[0, 3:6])
    np.testing.assert_allclose(euler_to_matrix(nxt[0, 3:6]), r, atol=1e-9)
    assert compute_new_pose(states[0], np.array([0, 0, 0, 0, 0, 0, 5.0]))[6] == 1.0  # gripper clipped


def test_reset_is_deterministic(envs):
    env = envs("pick_and_place")
    obs1, info1 = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(2):
        env.step(random_action(rng))
    obs2, info2 = env.reset(seed=3)
    np.testing.assert_array_equal(obs1["image"], obs2["image"])
    np.testing.assert_array_equal(obs1["state"], obs2["state"])
    np.testing.assert_array_equal(info1["cube_pos"], info2["cube_pos"])
    other = env.reset(seed=4)[0]
    assert not np.array_equal(other["state"], obs1["state"])


def test_steps_are_deterministic_and_unaffected_by_goal_images(envs):
    env = envs("grasp")
    action = np.array([0.03, -0.02, -0.04, 0.1, -0.1, 0.2, 0.7], dtype=np.float32)
    runs = []
    for with_goals in (False, True, False):
        env.reset(seed=11)
        if with_goals:
            env.goal_images()
        runs.append([env.step(action)[0] for _ in range(2)])
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["state"], b["state"])


def test_state_convention(envs):
    env = envs("reach")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    state = obs["state"]
    assert state.shape == (7,) and state.dtype == np.float32 and obs["image"].dtype == np.uint8
    np.testing.assert_allclose(state[:3], info["ee_pos"], atol=1e-6)
    np.testing.assert_allclose(state[3:6], [np.pi, 0, 0], atol=2e-3)  # gripper pointing down, roll in [0, 2π)
    assert state[6] == 0.0
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 0.6], dtype=np.float32))
    assert obs["state"][6] == pytest.approx(0.6)
    obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32))
    assert obs["state"][6] == 1.0


@pytest.mark.parametrize("axis", [0, 2])
def test_translation_tracks_the_action(envs, axis):
    env = envs("reach")
    obs, _ = env.reset(seed=1)
    action = np.zeros(7, dtype=np.float32)
    action[axis] = 0.05
    nxt, *_ = env.step(action)
    err = np.linalg.norm(nxt["state"][:3] - (obs["state"][:3] + action[:3]))
    assert err < 0.002  # measured ≈0.2 mm; the brief's bound is 1 cm


def test_rotation_action_follows_compute_new_pose(envs):
    env = envs("reach")
    obs, _ = env.reset(seed=2)
    action = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0], dtype=np.float32)
    nxt, *_ = env.step(action)
    want = compute_new_pose(obs["state"], action, wrap_roll=True)
    np.testing.assert_allclose(euler_to_matrix(nxt["state"][3:6]), euler_to_matrix(want[3:6]), atol=5e-3)


def test_reach_success_rule(envs):
    env = envs("reach")
    layout = sample_layout("reach", np.random.default_rng(0))
    for offset, expected in [(0.0, True), (0.03, True), (0.05, False), (0.15, False)]:
        goal = layout.ee_start + np.array([offset, 0.0, 0.0])
        _, info = env.reset(seed=0, options={"layout": dataclasses.replace(layout, goal=goal)})
        assert info["is_success"] is expected, offset


def test_scripted_grasp_lifts_the_cube(envs):
    env = envs("grasp")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(env.max_episode_steps):
        _, reward, _, _, info = env.step(scripted_action(env, rng, noise=0.0))
        if info["is_success"]:
            break
    assert info["is_success"] and info["grasped"] and reward == 1.0
    assert info["cube_pos"][2] > 0.025 + 0.04


@pytest.mark.parametrize("task", sorted(TASKS))
def test_goal_images(envs, task):
    env = envs(task)
    obs, _ = env.reset(seed=5)
    images, states = env.goal_images(), env.goal_states()
    assert len(images) == len(states) == len(TASKS[task].subgoal_steps) == len(env.goals)
    for image, state in zip(images, states, strict=True):
        assert image.shape == obs["image"].shape and image.dtype == np.uint8
        assert np.abs(image.astype(int) - obs["image"]).sum() > 0
        assert state.shape == (7,) and 0.0 <= state[6] <= 1.0
    np.testing.assert_array_equal(env.render(), obs["image"])  # the true state is restored
    np.testing.assert_array_equal(env.state(), obs["state"])


def test_sim_state_round_trip(envs):
    env = envs("reach_with_object")
    env.reset(seed=6)
    rng = np.random.default_rng(1)
    env.step(random_action(rng))
    saved, action = env.get_state(), random_action(rng)
    first = env.step(action)
    for _ in range(2):
        env.step(random_action(rng))
    env.set_state(saved)
    second = env.step(action)
    np.testing.assert_array_equal(first[0]["image"], second[0]["image"])
    np.testing.assert_array_equal(first[0]["state"], second[0]["state"])
    np.testing.assert_array_equal(first[4]["cube_pos"], second[4]["cube_pos"])
    env.release_state(saved)


def test_explicit_sim_state_moves_between_envs(envs):
    env = envs("reach_with_object")
    env.reset(seed=8)
    env.step(np.array([0.04, 0.0, 0.02, 0.0, 0.0, 0.0, 0.0], dtype=np.float32))
    saved = env.get_state(exact=False)
    other = FrankaEnv(task="reach_with_object", image_size=48)
    try:
        other.reset(seed=8)
        other.set_state(saved)
        np.testing.assert_allclose(other.state(), env.state(), atol=1e-6)
        np.testing.assert_allclose(other.snapshot()["cube_pos"], env.snapshot()["cube_pos"], atol=1e-6)
        action = np.array([0.0, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
        np.testing.assert_allclose(other.step(action)[0]["state"], env.step(action)[0]["state"], atol=1e-4)
    finally:
        other.close()


def test_oracle_cost_prefers_moving_to_the_goal(envs):
    env = envs("reach")
    _, info = env.reset(seed=7)
    saved = env.get_state()
    direction = info["goal"] - info["ee_pos"]
    costs = []
    for sign in (1.0, -1.0):
        env.set_state(saved)
        env.simulate(np.concatenate([sign * 0.05 * direction / np.linalg.norm(direction), np.zeros(4)]))
        costs.append(env.oracle_cost())
    env.release_state(saved)
    assert costs[0] < info["oracle_cost"] < costs[1]


def test_random_policy_stays_within_bounds(envs):
    rng = np.random.default_rng(0)
    actions = np.stack([random_action(rng) for _ in range(2000)])
    assert np.abs(actions[:, :3]).sum(1).max() <= 0.075 + 1e-6
    assert np.all(actions[:, 3:6] == 0) and np.abs(actions[:, 6]).max() <= 1.0
    assert np.all([envs("reach").action_space.contains(a) for a in actions[:50]])
    assert np.abs(actions[:, :3]).sum(1).mean() > 0.04  # fills the ball rather than hugging the centre


def test_subgoal_schedule():
    assert [subgoal_index("pick_and_place", t) for t in (0, 3, 4, 13, 14, 17, 30)] == [0, 0, 1, 1, 2, 2, 2]
    assert subgoal_index("reach", 100) == 0
    assert [subgoal_index("grasp", t, pregrasp=True) for t in (0, 5, 6, 8, 9, 30)] == [0, 0, 1, 1, 2, 2]
    assert TASKS["reach"].budgets(pregrasp=True) == (16,) and TASKS["grasp"].budgets(pregrasp=True) == (6, 3, 16)


def test_pregrasp_goals_come_first():
    env = FrankaEnv(task="grasp", image_size=48, pregrasp=True)
    try:
        env.reset(seed=5)
        pre, closed, lift = env.goals
        cube = env.snapshot()["cube_pos"]
        assert (pre.name, closed.name, lift.name) == ("pregrasp", "closed", "lift")
        np.testing.assert_allclose(pre.ee_pos, cube, atol=1e-3)  # fingers around the cube where it lies
        assert pre.gripper == 0.0 and closed.gripper == 1.0 and closed.holding and not pre.holding
        assert env.max_episode_steps == 25 and len(env.goal_images()) == 3
        wrapped = make("franka-grasp", pregrasp=True, image_size=48)
        assert wrapped.spec.max_episode_steps == 25  # the time limit follows the budgets
        wrapped.close()
        first, second = env.goal_images()[:2]
        assert np.abs(first.astype(int) - second).sum() > 0  # the closed fingers show
    finally:
        env.close()


def test_registration_and_make():
    env = make("franka-reach", image_size=32)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["image"].shape == (32, 32, 3) and env.spec.max_episode_steps == TASKS["reach"].max_episode_steps
        assert env.unwrapped.goal_images()[0].shape == (32, 32, 3)
    finally:
        env.close()
    assert set(ENVS.values()) <= set(gym.registry)


def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    env = FrankaEnv(task="pick_and_place", image_size=32)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_import_starts_no_simulator():
    code = "import sys, vjepa2.envs; assert 'pybullet' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
