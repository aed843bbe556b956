import math

import numpy as np
import pytest
import torch

from vjepa2.config import ac_predictor_config, encoder_config
from vjepa2.config_io import to_dict
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.plan import Controller, ControllerSettings
from vjepa2.plan.cem import CEM_TINY, CEMConfig
from vjepa2.plan.controller import clip_action
from vjepa2.plan.load import frame_preprocess
from vjepa2.plan.mpc import OraclePlanner
from vjepa2.plan.world_model import WorldModel
from vjepa2.weights.files import atomic_save

RENDER = 128  # the sim renders 128 x 128; the control camera sees rows 16..112: 96 x 128, unlike the model's 64 x 64
LIMITS = (0.03, 0.03, 0.03, 0.05, 0.05, 0.05, 0.5)


@pytest.fixture(scope="module")
def world_model() -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("vit_test"))
    return WorldModel(encoder, ACPredictor(ac_predictor_config("ac_vit_test")), dtype="bf16")


def save_world_model(world_model: WorldModel, path, transform: str, fps: float):
    """A world-model file as ``vjepa2 train-ac`` writes it (configs, weights, the run's data section)."""
    atomic_save(
        {
            "encoder": world_model.encoder.state_dict(), "predictor": world_model.predictor.state_dict(), "step": 2,
            "config": {"data": {"transform": transform, "fps": fps}},
            "encoder_config": to_dict(world_model.encoder.cfg), "predictor_config": to_dict(world_model.predictor.cfg),
        },
        path,
    )  # fmt: skip
    return path


@pytest.fixture
def reach():
    pytest.importorskip("pybullet")
    from vjepa2.plan.tabletop import make_env

    env = make_env("franka-reach", RENDER)
    yield env
    env.close()


class Stub:
    """A planner that returns ``action`` and records the goals and states it is asked for."""

    def __init__(self, action=None) -> None:
        self.action = np.zeros(7, np.float32) if action is None else np.asarray(action, np.float32)
        self.goals, self.states, self.seeds = [], [], []

    def reset(self, seed):
        self.seeds.append(seed)

    def plan(self, obs, goal):
        self.goals.append(goal)
        self.states.append(obs["state"])
        return self.action


def test_controller_loop_on_the_franka_sim(world_model, tmp_path, one_thread):
    # The loop of docs/real-robot.md (three steps of it): frame and state in, clipped action out, executed.
    pytest.importorskip("pybullet")
    import gymnasium as gym

    import vjepa2.envs  # noqa: F401  (registers vjepa2/FrankaReach-v0)

    path = save_world_model(world_model, tmp_path / "latest.pt", "resize", 4.0)
    settings = ControllerSettings(cem=CEM_TINY, action_limits=LIMITS, max_translation=0.04, device="cpu")
    controller = Controller.from_file(path, settings)
    env = gym.make("vjepa2/FrankaReach-v0", image_size=128)
    obs, _ = env.reset(seed=0)
    controller.set_goal(env.unwrapped.goal_images()[0][16:112])  # the goal, seen by the same camera
    for _ in range(3):
        frame = obs["image"][16:112]  # a 96 x 128 camera frame; the model sees 64 x 64
        action = controller.act(frame, obs["state"])
        obs, *_ = env.step(action)
        assert action.shape == (7,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= np.array(LIMITS) + 1e-6) and np.linalg.norm(action[:3]) <= 0.04 + 1e-6
        assert controller.last_seconds > 0 and controller.last_info["seconds"] == controller.last_seconds
        assert math.isfinite(controller.last_info["energy"])
    env.close()
    assert controller.period == 0.25 and controller.last_info["steps"] == 3
    # a 96 x 128 frame reaches the model as its centred 96 x 96 square at 64 x 64 (no squashing)
    x = controller.planner.preprocess(frame)
    assert x.shape == (3, 64, 64)
    torch.testing.assert_close(x, frame_preprocess("resize", 64)(np.ascontiguousarray(frame[:, 16:112])))


def test_from_file_takes_the_recorded_transform_and_fps(world_model, tmp_path, one_thread):
    path = save_world_model(world_model, tmp_path / "latest.pt", "center", 2.0)
    controller = Controller.from_file(path, ControllerSettings(cem=CEM_TINY, horizon=2, dtype="fp32", device="cpu"))
    assert controller.fps == 2.0 and controller.period == 0.5 and controller.planner.cfg.horizon == 2
    frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    torch.testing.assert_close(controller.planner.preprocess(frame), frame_preprocess("center", 64)(frame))
    direct = Controller.from_world_model(world_model, ControllerSettings(cem=CEM_TINY, transform="center"))
    torch.testing.assert_close(direct.planner.preprocess(frame), frame_preprocess("center", 64)(frame))
    controller.set_goal(frame[::-1].copy())
    assert controller.act(frame, np.zeros(7, np.float32)).shape == (7,)


def test_subgoals_advance_after_their_budgets_and_reset_restarts():
    stub = Stub()
    controller = Controller(stub, ControllerSettings(cem=CEMConfig(seed=3)))
    goals = [np.full((8, 8, 3), i, np.uint8) for i in range(3)]
    controller.set_goal(goals, budgets=[2, 1, 3])
    seen = []
    for _ in range(8):
        controller.act(goals[0], np.zeros(7))
        seen.append(int(stub.goals[-1][0, 0, 0]))
        assert controller.last_info["subgoal"] == seen[-1] == controller.subgoal
    assert seen == [0, 0, 1, 2, 2, 2, 2, 2]  # the last sub-goal stays after its budget
    controller.reset()
    controller.act(goals[0], np.zeros(7))
    assert int(stub.goals[-1][0, 0, 0]) == 0 and stub.seeds[-1] == 3


def test_a_switch_rule_moves_on_when_it_says_so():
    stub = Stub()
    controller = Controller(stub)
    goals = [np.full((8, 8, 3), i, np.uint8) for i in range(2)]
    calls = []

    def gripper_closed(index, steps, state, energy):
        calls.append((index, steps, float(state[6]), energy))
        return state[6] > 0.5

    controller.set_goal(goals, switch=gripper_closed)
    for g in (0.0, 0.0, 1.0, 1.0):
        controller.act(goals[0], np.array([0.4, 0, 0.2, 0, 0, 0, g]))
    assert [int(g[0, 0, 0]) for g in stub.goals] == [0, 0, 1, 1]
    assert calls[0][:3] == (0, 0, 0.0) and math.isnan(calls[0][3]) and len(calls) == 3  # not asked on the last


def test_actions_are_clipped_per_axis_by_norm_and_to_the_workspace():
    settings = ControllerSettings(action_limits=LIMITS, max_translation=0.04)
    big = np.array([1.0, -1.0, 0.5, 1.0, 0.0, -1.0, 3.0], np.float32)
    out = clip_action(big, np.zeros(7), settings)
    np.testing.assert_allclose(out[3:], [0.05, 0.0, -0.05, 0.5])
    np.testing.assert_allclose(out[:3], np.array([1, -1, 1]) * 0.04 / math.sqrt(3), rtol=1e-6)
    box = ControllerSettings(workspace=((0.3, -0.3, 0.05), (0.7, 0.3, 0.4)))
    state = np.array([0.69, 0.0, 0.06, 0, 0, 0, 0])
    np.testing.assert_allclose(clip_action([0.05, 0, -0.05, 0, 0, 0, 0], state, box)[:3], [0.01, 0, -0.01], atol=1e-6)
    controller = Controller(Stub(big), settings)
    controller.set_goal(np.zeros((8, 8, 3), np.uint8))
    np.testing.assert_array_equal(controller.act(np.zeros((4, 6, 3), np.uint8), np.zeros(7)), out)
    assert controller.last_info["clipped"] and np.array_equal(controller.last_info["raw_action"], big)


def test_roll_is_wrapped_into_the_training_range():
    stub = Stub()
    controller = Controller(stub, ControllerSettings(wrap_roll=True))
    controller.set_goal(np.zeros((8, 8, 3), np.uint8))
    controller.act(np.zeros((8, 8, 3), np.uint8), [0, 0, 0, -math.pi + 0.1, 0, 0, 0])
    assert stub.states[-1][3] == pytest.approx(math.pi + 0.1)
    assert stub.states[-1].dtype == np.float32


def test_bad_inputs_fail_with_clear_errors():
    controller = Controller(Stub())
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="no goal"):
        controller.act(frame, np.zeros(7))
    controller.set_goal(frame)
    with pytest.raises(ValueError, match=r"state must be 7 finite values .* got shape \(6,\)"):
        controller.act(frame, np.zeros(6))
    with pytest.raises(ValueError, match="finite"):
        controller.act(frame, [0, 0, math.nan, 0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"frame must be a uint8 RGB array \[H, W, 3\], got ndarray float64 \(8, 8\)"):
        controller.act(np.zeros((8, 8)), np.zeros(7))
    with pytest.raises(ValueError, match="pass budgets"):
        controller.set_goal([frame, frame])
    with pytest.raises(ValueError, match="budgets must be 2 integers"):
        controller.set_goal([frame, frame], budgets=[3])
    with pytest.raises(ValueError, match=r"goal\[1\] must be a uint8"):
        controller.set_goal([frame, frame[..., :2]], budgets=[1, 1])
    with pytest.raises(RuntimeError, match="non-finite"):
        bad = Controller(Stub([math.nan] * 7))
        bad.set_goal(frame)
        bad.act(frame, np.zeros(7))
    with pytest.raises(ValueError, match="'vit_large' is not an action-conditioned world model"):
        Controller.from_release("vit_large")  # refused before any download
    for kwargs in ({"action_limits": (0.1,) * 6}, {"max_translation": 0.0}, {"horizon": 0},
                   {"workspace": ((0, 0, 0), (1, 1, 0))}):  # fmt: skip
        with pytest.raises(ValueError):
            ControllerSettings(**kwargs)


def test_an_oracle_quality_planner_moves_the_arm_to_the_goal(reach):
    # The controller's loop with the simulator as the model (true-state CEM): the arm closes in on the goal.
    obs, info = reach.reset(seed=0)
    sim = reach.simulator()
    oracle = OraclePlanner(sim, CEMConfig(samples=24, iterations=2, topk=4), distance_fn=sim.distance)
    controller = Controller(oracle, ControllerSettings(max_translation=0.05))
    controller.set_goal(reach.goal_images()[0])
    start = info["distance"]
    for _ in range(4):
        action = controller.act(obs["image"][16:112], obs["state"])
        assert np.linalg.norm(action[:3]) <= 0.05 + 1e-6
        obs, _, _, _, info = reach.step(action)
    assert info["distance"] < 0.5 * start
