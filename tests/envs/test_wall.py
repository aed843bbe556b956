"""Two-Rooms / Wall: determinism, walls and door, DINO-WM's success rule, rendering, goal images and ``collect``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from vjepa2.data.trajectories import TrajectoryFormatError, load_trajectory, save_trajectory  # noqa: E402
from vjepa2.envs import BENCHMARK_ENVS, make  # noqa: E402
from vjepa2.envs.collect import collect  # noqa: E402
from vjepa2.envs.wall import (  # noqa: E402
    DOOR_RANGE,
    FIXED_LAYOUT,
    WALL_RANGE,
    Layout,
    WallEnv,
    door_path_length,
    success,
)

WALL_X, DOOR_Y = FIXED_LAYOUT


def _rollout(env: WallEnv, seed: int, steps: int = 20) -> tuple[list[np.ndarray], list[np.ndarray]]:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    images, states = [obs["image"]], [info["state"]]
    for _ in range(steps):
        obs, _, _, _, info = env.step(env.scripted_action(rng, 0.3))
        images.append(obs["image"])
        states.append(info["state"])
    return images, states


def test_same_seed_same_episode_and_other_seeds_differ():
    a, b = _rollout(WallEnv(image_size=32), 3), _rollout(WallEnv(image_size=32), 3)
    for x, y in zip(a[0] + a[1], b[0] + b[1], strict=True):
        np.testing.assert_array_equal(x, y)
    c = _rollout(WallEnv(image_size=32), 4)
    assert not np.allclose(a[1][0], c[1][0])


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")
def test_gymnasium_checker_and_registration():
    from gymnasium.utils.env_checker import check_env

    check_env(WallEnv(image_size=16), skip_render_check=True)
    for name in ("wall", "two-rooms", "wall-random"):
        env = make(name, image_size=24).unwrapped
        obs, info = env.reset(seed=0)
        assert obs["image"].shape == (24, 24, 3) and obs["state"].shape == (2,) and info["state"].shape == (4,)
    with pytest.raises(ValueError, match="wall-random"):  # the message lists the valid names
        make("two-room")
    assert {"wall", "two-rooms", "wall-random", "pusht"} <= set(BENCHMARK_ENVS)


def test_success_rule_on_hand_built_states():
    goal = np.array([20.0, 20.0, WALL_X, DOOR_Y])
    assert success(np.array([24.4, 20.0]), goal) and success(np.array([23.0, 23.0]), goal)  # 4.24 < 4.5
    assert not success(np.array([24.6, 20.0]), goal) and not success(np.array([23.2, 23.2]), goal)  # 4.53
    env = WallEnv(image_size=16)
    _, info = env.reset(seed=0, options={"state": [20.0, 20.0], "goal": [24.0, 20.0]})
    assert info["is_success"] and info["distance"] == pytest.approx(4.0)


def test_wall_blocks_and_door_lets_through():
    env = WallEnv(image_size=16)
    env.reset(seed=0, options={"state": [WALL_X - 5.0, 10.0]})
    for _ in range(5):
        env.step(np.array([1.8, 0.0]))
    assert WALL_X - 3.2 < env.xy[0] <= WALL_X - 3.0 and env.xy[1] == 10.0  # stopped at the wall's face
    env.reset(seed=0, options={"state": [WALL_X - 5.0, DOOR_Y]})
    for _ in range(5):
        env.step(np.array([1.8, 0.0]))
    assert env.xy[0] > WALL_X + 3.0  # through the door
    env.reset(seed=0, options={"state": [58.0, 58.0]})
    env.step(np.array([10.0, 10.0]))  # clipped to norm 1.8: at most 3.6 px, and never through the border
    assert 4.0 < env.xy[0] < 60.0 and 4.0 < env.xy[1] < 60.0


def test_actions_are_clipped_to_the_l2_ball():
    env = WallEnv(image_size=16)
    env.reset(seed=0, options={"state": [15.0, 30.0]})
    env.step(np.array([30.0, 40.0]))
    np.testing.assert_allclose(env.xy, [15.0 + 2 * 1.08, 30.0 + 2 * 1.44], atol=1e-9)


def test_native_render_is_dino_wm_layout_and_goal_image_matches():
    env = WallEnv(image_size=65)
    obs, _ = env.reset(seed=0, options={"state": [12.0, 40.0], "goal": [50.0, 20.0]})
    image = obs["image"]
    assert image.dtype == np.uint8 and image.shape == (65, 65, 3)
    assert (image[10, int(WALL_X)] == 0).all() and (image[int(DOOR_Y), int(WALL_X)] == 255).all()  # wall, door
    assert (image[4, 20] == 0).all() and (image[60, 20] == 0).all() and (image[20, 4] == 0).all()  # borders
    assert tuple(image[40, 12]) == (255, 0, 0) and tuple(image[40, 20]) == (255, 255, 255)  # the dot at (x, y)
    goal_image = env.goal_images()[0]
    assert tuple(goal_image[20, 50]) == (255, 0, 0)
    obs_at_goal, _ = env.reset(seed=0, options={"state": [50.0, 20.0]})
    np.testing.assert_array_equal(obs_at_goal["image"], goal_image)


def test_random_wall_variant_and_state_round_trip():
    env = WallEnv(image_size=16, random_wall=True)
    layouts = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        wall_x, door_y = info["state"][2:]
        assert WALL_RANGE[0] <= wall_x <= WALL_RANGE[1] and DOOR_RANGE[0] <= door_y <= DOOR_RANGE[1]
        assert (info["state"][0] - wall_x) * (info["goal_state"][0] - wall_x) < 0  # opposite rooms
        layouts.add((wall_x, door_y))
    assert len(layouts) > 4
    state = env.get_state()
    other = WallEnv(image_size=16)
    other.reset(seed=99)
    other.set_state(state)
    np.testing.assert_array_equal(other.get_state(), state)
    np.testing.assert_array_equal(other.render(), env.render())


def test_oracle_cost_goes_through_the_door():
    lay = Layout(WALL_X, DOOR_Y)
    a, b = np.array([20.0, 10.0]), np.array([44.0, 10.0])
    assert door_path_length(lay, a, b) == pytest.approx(2 * np.hypot(12.0, 20.0))
    assert door_path_length(lay, a, np.array([20.0, 50.0])) == pytest.approx(40.0)


@pytest.mark.parametrize("policy", ["scripted", "random"])
def test_collect_writes_2d_trajectories_that_replay(tmp_path, policy):
    paths = collect("wall", 2, tmp_path, policy=policy, image_size=32, steps=12, progress=False)
    env = WallEnv(image_size=32)
    for path in paths:
        traj = load_trajectory(path)
        assert traj.frames.shape == (13, 32, 32, 3) and traj.states.shape == (13, 2) and traj.actions.shape == (12, 2)
        assert traj.true_states.shape == (13, 4) and traj.fps == 10.0
        assert traj.metadata["state_dim"] == 2 and traj.metadata["action_dim"] == 2
        assert np.linalg.norm(traj.actions, axis=1).max() <= 1.8 + 1e-6
        env.reset(seed=0, options={"state": traj.true_states[0]})
        for action, expected in zip(traj.actions, traj.true_states[1:], strict=True):
            env.step(action)
            np.testing.assert_allclose(env.get_state(), expected, atol=1e-4)


def test_undeclared_state_dims_are_rejected(tmp_path):
    frames, states = np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 2), np.float32)
    with pytest.raises(TrajectoryFormatError, match="states"):
        save_trajectory(tmp_path / "t.npz", frames, states, fps=10.0)
    meta = {"state_dim": 2, "action_dim": 2}
    path = save_trajectory(tmp_path / "t.npz", frames, states, 10.0, actions=np.zeros((2, 2)), metadata=meta)
    assert load_trajectory(path).states.shape == (3, 2)
