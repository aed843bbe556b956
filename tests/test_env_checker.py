"""Every registered environment is a well-formed Gymnasium env: gym.make with render_mode, a step limit, check_env."""

import warnings

import gymnasium as gym
import pytest

from vjepa2.envs import ENVS

IDS = sorted(set(ENVS.values()))


@pytest.mark.parametrize("gym_id", IDS)
def test_registered_env_passes_the_gymnasium_checker(gym_id):
    pytest.importorskip("pybullet" if "Franka" in gym_id else "pymunk")
    from gymnasium.utils.env_checker import check_env

    env = gym.make(gym_id, render_mode="rgb_array")
    try:
        assert env.spec.max_episode_steps and env.spec.max_episode_steps > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env.unwrapped, skip_render_check=False)
        obs, _ = env.reset(seed=0)
        assert env.render().shape == obs["image"].shape
    finally:
        env.close()
