"""Push-T (DINO-WM variant on gym-pusht): seeded states, relative actions, the success rule, goal images, collect."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("gym_pusht")

from vjepa2.data.trajectories import load_trajectory  # noqa: E402
from vjepa2.envs import make  # noqa: E402
from vjepa2.envs.collect import collect  # noqa: E402
from vjepa2.envs.pusht import PushTEnv, angle_error, proprio_step, success  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def env() -> PushTEnv:
    return PushTEnv(image_size=SIZE)


def test_seeded_random_states_follow_dino_wm(env):
    starts = []
    for seed in range(6):
        _, info = env.reset(seed=seed)
        for state in (info["state"], info["goal_state"]):
            assert np.all((50 <= state[:2]) & (state[:2] < 450)) and np.all((100 <= state[2:4]) & (state[2:4] < 400))
            np.testing.assert_allclose(state[:4], np.round(state[:4]), atol=1e-9)  # integer positions
            np.testing.assert_array_equal(state[5:], 0.0)
        starts.append(info["state"])
    _, again = env.reset(seed=2)
    np.testing.assert_array_equal(again["state"], starts[2])
    assert not np.allclose(starts[0], starts[1])


def test_state_round_trip_keeps_pose_and_velocity(env):
    state = np.array([100.0, 120.0, 300.0, 250.0, 1.2, 30.0, -20.0])
    env.reset(seed=0, options={"state": state})
    np.testing.assert_allclose(env.get_state(), state, atol=1e-9)
    obs, _ = env.reset(seed=0, options={"state": state})
    np.testing.assert_allclose(obs["state"], state[[0, 1, 5, 6]], atol=1e-4)


@pytest.mark.parametrize(
    ("delta", "ok"),
    [
        ([12.0, 0.0, 0.0, 15.0, 0.3], True),  # |position error| = 19.2, angle 0.3 < pi/9
        ([12.0, 0.0, 0.0, 17.0, 0.0], False),  # 20.8 px
        ([0.0, 0.0, 0.0, 0.0, np.pi / 9 + 0.01], False),
        ([0.0, 0.0, 0.0, 0.0, 2 * np.pi - 0.2], True),  # the angle error wraps
    ],
)
def test_success_rule_on_hand_built_states(delta, ok):
    goal = np.array([200.0, 200.0, 300.0, 300.0, 0.1, 0.0, 0.0])
    state = goal.copy()
    state[:5] += delta
    assert success(state, goal) is ok
    assert angle_error(0.1, 2 * np.pi - 0.1) == pytest.approx(0.2)


def test_relative_actions_and_proprio_model(env):
    """Away from the block the agent follows the PD controller towards agent + 100 x action exactly."""
    state = np.array([100.0, 100.0, 350.0, 350.0, 0.0, 0.0, 0.0])
    env.reset(seed=0, options={"state": state})
    proprio = state[[0, 1, 5, 6]]
    for action in ([0.5, 0.0], [0.5, 0.2], [-0.3, 0.4]):
        obs, *_ = env.step(np.array(action))
        proprio = proprio_step(proprio, np.array(action))
        np.testing.assert_allclose(obs["state"], proprio, atol=1e-3)
    assert env.get_state()[0] > 130.0 and env.get_state()[2] == pytest.approx(350.0)  # moved +x, block untouched
    env.step(np.array([5.0, 5.0]))  # clipped to [-1, 1]: the target is at most 100 px away
    assert np.linalg.norm(env.get_state()[5:]) < 100.0 / 0.1


def test_goal_image_leaves_the_episode_alone(env):
    goal = np.array([250.0, 260.0, 240.0, 200.0, 0.7, 0.0, 0.0])
    env.reset(seed=1, options={"goal": goal})
    before = env.get_state()
    image = env.goal_images()[0]
    np.testing.assert_array_equal(env.get_state(), before)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    at_goal, _ = env.reset(seed=1, options={"state": goal, "goal": goal})
    np.testing.assert_array_equal(at_goal["image"], image)
    assert env._info()["is_success"]


@pytest.mark.filterwarnings("ignore:.*Box observation space m")
def test_gymnasium_checker_and_make():
    from gymnasium.utils.env_checker import check_env

    check_env(PushTEnv(image_size=16), skip_render_check=True)
    obs, _ = make("pusht", image_size=SIZE).unwrapped.reset(seed=0)
    assert obs["image"].shape == (SIZE, SIZE, 3) and obs["state"].shape == (4,)


def test_collect_scripted_pushes_the_block(tmp_path):
    paths = collect("pusht", 2, tmp_path, image_size=SIZE, steps=40, progress=False)
    moved = []
    for path in paths:
        traj = load_trajectory(path)
        assert traj.states.shape == (41, 4) and traj.actions.shape == (40, 2) and traj.true_states.shape == (41, 7)
        assert traj.metadata["state_dim"] == 4 and np.abs(traj.actions).max() <= 1.0
        moved.append(np.linalg.norm(traj.true_states[-1, 2:4] - traj.true_states[0, 2:4]))
    assert max(moved) > 5.0
