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


@pytest.mark.parametrize("gym_id", IDS)
def test_every_env_speaks_the_planning_state_vocabulary(gym_id):
    """get_state / set_state restore the simulation, simulate moves it, oracle_cost takes a goal index."""
    pytest.importorskip("pybullet" if "Franka" in gym_id else "pymunk")
    import numpy as np

    from vjepa2.plan.envs import PlanningEnv, SimulatedEnv

    env = PlanningEnv(gym.make(gym_id))
    try:
        assert isinstance(env.sim, SimulatedEnv)
        env.reset(seed=0)
        model = env.simulator()
        state, cost = model.get_state(), env.sim.oracle_cost(goal_index=0)
        for _ in range(3):
            model.step(env.action_space.sample())
        model.set_state(state)
        assert env.sim.oracle_cost(goal_index=0) == pytest.approx(cost, abs=1e-6)
        goals = env.goal_images()
        assert model.distance(None, {}, goals[0]) == pytest.approx(cost, abs=1e-6)
        _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
        assert np.isfinite(info["distance"]) and "is_success" in info
    finally:
        env.close()
