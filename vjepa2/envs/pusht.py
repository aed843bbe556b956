"""Push-T, DINO-WM variant, on the ``gym-pusht`` package (pymunk physics, pygame drawing off-screen, headless).

``gym-pusht`` (``pip install "vjepa2[pusht]"``) supplies the physics, the T block (two 120 x 30 and 30 x 90 boxes,
mass 1, friction 1), the agent (a kinematic disc of radius 15 under PD control, k_p 100, k_v 20, 100 Hz physics,
10 Hz control) and the drawing. This wrapper gives it DINO-WM's semantics (``gaoyuezhou/dino_wm:
env/pusht/pusht_env.py``, ``pusht_wrapper.py``; arXiv 2411.04983):

- Relative actions in [-1, 1]^2: the PD target is ``agent + 100 x action``.
- State ``[agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy]`` (``with_velocity``), set in
  DINO-WM's order (block angle before position, so the state read back is the state set); proprioception
  ``[agent_x, agent_y, agent_vx, agent_vy]``.
- Random initial and goal states as ``sample_random_init_goal_states``: agent xy integer in [50, 450), block xy
  integer in [100, 400), angle ``randn * 2 pi - pi``, velocity 0 (drawn from the env's seeded generator).
- Success (``eval_state``): ``||goal[:4] - state[:4]|| < 20`` (agent and block xy together) and the wrapped angle
  error ``< pi / 9``. ``info["distance"]`` is that position error (px).
- The fixed green T of gym-pusht (256, 256, pi/4) is drawn as a visual anchor only, not the goal (``with_target``).
- Frames are rendered at ``image_size`` (DINO-WM: 224) with gym-pusht's drawing and resize.

One env step is one 10 Hz control step; DINO-WM's frameskip 5 (one planner action = 5 control steps) is applied by
the planner (:mod:`vjepa2.plan.protocol`), not here. ``gym-pusht``'s own coverage-based termination is ignored.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame greets on import otherwise
try:
    from gym_pusht.envs.pusht import PushTEnv as _GymPushT
except ImportError as err:  # pragma: no cover - depends on the optional extra
    raise ImportError('Push-T needs gym-pusht: pip install "vjepa2[pusht]" (or pip install gym-pusht)') from err

WINDOW = 512
ACTION_SCALE = 100.0
POSITION_TOLERANCE, ANGLE_TOLERANCE = 20.0, np.pi / 9
AGENT_RANGE, BLOCK_RANGE = (50, 450), (100, 400)
STATE_DIM, PROPRIO_DIM, ACTION_DIM = 7, 4, 2
K_P, K_V, SIM_DT, SUBSTEPS = 100.0, 20.0, 0.01, 10


def angle_error(a: Any, b: Any) -> Any:
    """Wrapped absolute angle difference in [0, pi]."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % (2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def position_error(state: np.ndarray, goal: np.ndarray) -> float:
    """``||goal[:4] - state[:4]||``: agent and block positions together (px)."""
    return float(np.linalg.norm(np.asarray(goal)[:4] - np.asarray(state)[:4]))


def success(state: np.ndarray, goal: np.ndarray) -> bool:
    """DINO-WM's rule: position error < 20 px and wrapped angle error < pi / 9."""
    return position_error(state, goal) < POSITION_TOLERANCE and bool(angle_error(state[4], goal[4]) < ANGLE_TOLERANCE)


def proprio_step(state: Any, action: Any) -> Any:
    """Contact-free proprioception update ``[x, y, vx, vy]`` for world-model rollouts (numpy or torch, ``[..., 4]``):
    the PD controller's 10 physics steps towards ``xy + 100 * action``, as gym-pusht integrates them."""
    xy, v = state[..., :2], state[..., 2:4]
    target = xy + ACTION_SCALE * action
    for _ in range(SUBSTEPS):
        v = v + (K_P * (target - xy) - K_V * v) * SIM_DT
        xy = xy + v * SIM_DT
    if isinstance(xy, np.ndarray):
        return np.concatenate([xy, v], axis=-1)
    import torch

    return torch.cat([xy, v], dim=-1)


class PushTEnv(_GymPushT):
    """Push-T with DINO-WM's relative actions, random goal states and success rule (see the module docstring).

    Args:
        image_size: side of the rendered frames.
        max_episode_steps: default episode length of ``vjepa2 collect``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    fps = 10.0
    state_dim, proprio_dim, action_dim = STATE_DIM, PROPRIO_DIM, ACTION_DIM
    action_bound = ("box", 1.0)  # the action set: CEM variant and radius
    proprio_step = staticmethod(proprio_step)

    def __init__(
        self, image_size: int = 64, max_episode_steps: int = 200, render_mode: str | None = "rgb_array"
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' (or None), got {render_mode!r}")
        super().__init__(
            obs_type="state", render_mode="rgb_array", observation_width=image_size, observation_height=image_size
        )  # frames are the observation: always rendered
        self.image_size, self.max_episode_steps = image_size, max_episode_steps
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "state": gym.spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32),
            }
        )
        self.goal_state = np.zeros(STATE_DIM)
        self._aim: np.ndarray | None = None
        self._scratch: PushTEnv | None = None

    # ---------------------------------------------------------------- state

    def get_state(self) -> np.ndarray:
        """The full true state ``[agent xy, block xy, block angle in [0, 2 pi), agent velocity]``."""
        a, b, v = self.agent.position, self.block.position, self.agent.velocity
        return np.array([a.x, a.y, b.x, b.y, self.block.angle % (2 * np.pi), v.x, v.y])

    def set_state(self, state: np.ndarray) -> None:
        """A fresh physics scene holding ``state`` (5 values: zero velocity)."""
        self._setup()
        self._set_state(np.asarray(state, dtype=np.float64))

    def _set_state(self, state: np.ndarray) -> None:
        """DINO-WM's order (angle, then position); the velocity is applied after the settling step."""
        self.agent.velocity = (0.0, 0.0)
        self.agent.position = [float(state[0]), float(state[1])]
        self.block.angle = float(state[4])
        self.block.position = [float(state[2]), float(state[3])]
        self.space.step(self.dt)
        self.agent.velocity = (float(state[5]), float(state[6])) if len(state) >= STATE_DIM else (0.0, 0.0)

    def sample_state(self) -> np.ndarray:
        """DINO-WM's random state: integer agent and block positions, angle ``randn * 2 pi - pi``, velocity 0."""
        rng = self.np_random
        agent, block = rng.integers(*AGENT_RANGE, size=2), rng.integers(*BLOCK_RANGE, size=2)
        return np.array([*agent, *block, rng.standard_normal() * 2 * np.pi - np.pi, 0.0, 0.0], dtype=np.float64)

    # ---------------------------------------------------------------- gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """New episode from random initial and goal states; ``options`` may fix ``"state"`` and ``"goal"``."""
        gym.Env.reset(self, seed=seed)
        options = options or {}
        start, goal = self.sample_state(), self.sample_state()
        self.set_state(options.get("state", start))
        goal = np.asarray(options.get("goal", goal), dtype=np.float64)
        self.goal_state = np.concatenate([goal, np.zeros(STATE_DIM - len(goal))])
        self._aim = None
        return self._obs(), self._info()

    def simulate(self, action: np.ndarray) -> None:
        """One control step (10 physics steps of the PD controller), without rendering."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(ACTION_DIM), -1.0, 1.0)
        super().step(np.asarray(self.agent.position) + ACTION_SCALE * a)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.simulate(action)
        info = self._info()
        return self._obs(), float(info["is_success"]), False, False, info

    def render(self) -> np.ndarray:
        return self._get_img(self._draw(), width=self.image_size, height=self.image_size)

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """uint8 ``[S, S, 3]`` image of ``state``, drawn in a scratch scene (this episode is left untouched)."""
        if self._scratch is None:
            self._scratch = PushTEnv(self.image_size)
        self._scratch.set_state(state)
        return self._scratch.render()

    def goal_images(self) -> list[np.ndarray]:
        """The episode's goal image (one goal)."""
        return [self.render_state(self.goal_state)]

    # ---------------------------------------------------------------- scores

    def distance(self, state: np.ndarray | None = None, goal: np.ndarray | None = None) -> float:
        """Position error of agent and block together (px), as in the success rule."""
        return position_error(self.get_state() if state is None else state, self.goal_state if goal is None else goal)

    def oracle_cost(
        self, state: np.ndarray | None = None, goal: np.ndarray | None = None, *, goal_index: int | None = None
    ) -> float:
        """Position error / 20 + angle error / (pi / 9): both success tolerances weigh the same."""
        if goal_index not in (None, 0):
            raise ValueError(f"{type(self).__name__} has one goal image; goal_index {goal_index} does not exist")
        state = self.get_state() if state is None else state
        goal = self.goal_state if goal is None else goal
        angle = float(angle_error(state[4], goal[4]))
        return position_error(state, goal) / POSITION_TOLERANCE + angle / ANGLE_TOLERANCE

    def _obs(self) -> dict[str, np.ndarray]:
        s = self.get_state()
        return {"image": self.render(), "state": s[[0, 1, 5, 6]].astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        state = self.get_state()
        return {"state": state, "goal_state": self.goal_state.copy(), "distance": self.distance(state),
                "is_success": success(state, self.goal_state)}  # fmt: skip

    # ---------------------------------------------------------------- exploration policies

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        """A uniform action in [-1, 1]^2, its target kept within 100 px of the block (stable-worldmodel's
        ``WeakPolicy``)."""
        return self._near_block(self.get_state()[:2] + ACTION_SCALE * rng.uniform(-1, 1, size=2))

    def scripted_action(self, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
        """A noisy pusher: pick a random aim point in the arena's centre, get behind the block (around its side),
        push it towards the aim, pick another aim when it gets there (or at random). Central aims keep the block
        off the walls, which a pushed block can pass through. With probability ``noise`` a :meth:`random_action`."""
        if rng.uniform() < noise:
            return self.random_action(rng)
        state = self.get_state()
        block, rel = state[2:4], state[:2] - state[2:4]
        if self._aim is None or rng.uniform() < 0.03 or np.linalg.norm(self._aim - block) < 20.0:
            self._aim = rng.uniform(150.0, WINDOW - 150.0, size=2)
        direction = (self._aim - block) / max(float(np.linalg.norm(self._aim - block)), 1e-9)
        side = np.array([-direction[1], direction[0]])
        side = side if rel @ side >= 0 else -side
        if rel @ direction < -40.0 and abs(rel @ side) < 30.0:  # behind the block: push
            return self._near_block(block + 40.0 * direction)
        if rel @ direction < -40.0:  # behind but off-axis: line up
            return self._near_block(block - 90.0 * direction)
        return self._near_block(block + 110.0 * side - 60.0 * direction)  # in front: go around its side

    def _near_block(self, target: np.ndarray) -> np.ndarray:
        """The action towards ``target`` moved within 100 px of the block and inside the arena."""
        state = self.get_state()
        offset = target - state[2:4]
        offset *= min(1.0, 100.0 / max(float(np.linalg.norm(offset)), 1e-9))
        target = np.clip(state[2:4] + offset, 20.0, WINDOW - 20.0)
        return np.clip((target - state[:2]) / ACTION_SCALE, -1.0, 1.0).astype(np.float32)
