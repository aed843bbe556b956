"""Two-Rooms / Wall: a point agent in a 65 x 65 world split by a wall with a door, rendered in numpy.

The world of DINO-WM's wall env (``gaoyuezhou/dino_wm: env/wall``, itself from PLDM; arXiv 2411.04983, 2502.14819)
with its default config: border walls at pixels 4 and 60, an inner vertical wall 7 px wide (``wall_width`` 6,
``|x - wall_x| <= 3``) with a door of ``|y - door_y| <= 4`` (``door_space`` 4), a Gaussian red dot of std 1.7 px on
white, black walls.

- Layout: fixed (``wall_x`` 32, ``door_y`` 30, DINO-WM's ``Wall``) or, with ``random_wall=True``, drawn per reset
  with ``wall_x`` in [20, 44] and ``door_y`` in [10, 54] (DINO-WM's ``WallRandom`` layouts).
- Actions: 2-D deltas, clipped to the L2 ball of radius 1.8 (the data generator's ``action_upper_bd``); the dot
  moves by ``2 x action`` (DotWall's ``location + action * 2``), so at most 3.6 px per step. Motion stops at the
  first wall it would enter (DINO-WM pushes the dot back 0.5 px instead; no sliding in either).
- Start and goal of a reset (DINO-WM's ``generate_random_state``): uniform in opposite rooms, 3.4 px from the
  walls, direction swapped half of the time.
- Success (DINO-WM's ``eval_state``): ``||xy - goal_xy|| < 4.5``.
- Observations: ``{"image": uint8 [S, S, 3], "state": float32 [x, y]}``; ``info["state"]`` is the full true state
  ``[x, y, wall_x, door_y]`` (enough to reset), with ``goal_state``, ``distance`` and ``is_success``.

Frames are drawn at any ``image_size`` by sampling the world at the pixel centres (65 gives DINO-WM's image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

WORLD = 65
LOW, HIGH = 4.0, 60.0  # border walls (border_wall_loc 5): the dot lives strictly between them
HALF_WALL = 3  # wall_width // 2
DOOR_SPACE = 4
DOT_STD = 1.7
PADDING = 2 * DOT_STD  # start/goal distance from walls
FIXED_LAYOUT = (32.0, 30.0)  # fix_wall_location, fix_door_location
WALL_RANGE, DOOR_RANGE = (20, 44), (10, 54)  # wall_padding 20, door_padding 10 (inclusive)
ACTION_SCALE = 2.0
MAX_ACTION = 1.8
SUCCESS_DISTANCE = 4.5
SUBSTEP = 0.1  # px between collision checks along a move
STATE_DIM, PROPRIO_DIM, ACTION_DIM = 4, 2, 2


@dataclass(frozen=True)
class Layout:
    """Where the inner wall and its door are (world px)."""

    wall_x: float
    door_y: float

    def free(self, xy: np.ndarray) -> np.ndarray:
        """Whether points ``[..., 2]`` are inside the world and outside the walls."""
        x, y = xy[..., 0], xy[..., 1]
        inside = (x > LOW) & (x < HIGH) & (y > LOW) & (y < HIGH)
        in_wall = (np.abs(x - self.wall_x) <= HALF_WALL) & (np.abs(y - self.door_y) > DOOR_SPACE)
        return inside & ~in_wall

    def side(self, xy: np.ndarray) -> float:
        """-1 left of the wall's centre line, +1 right of it."""
        return -1.0 if xy[0] < self.wall_x else 1.0

    def mask(self) -> np.ndarray:
        """Wall pixels of the native 65 x 65 image, ``[y, x]`` (DINO-WM's ``_render_walls``)."""
        cells = np.arange(WORLD)
        gx, gy = np.meshgrid(cells, cells, indexing="xy")
        wall = (np.abs(gx - self.wall_x) <= HALF_WALL) & ~(np.abs(gy - self.door_y) <= DOOR_SPACE)
        border = np.isin(gx, (LOW, HIGH)) | np.isin(gy, (LOW, HIGH))
        return wall | border


def clip_action(action: np.ndarray) -> np.ndarray:
    """The action scaled into the L2 ball of radius :data:`MAX_ACTION`."""
    a = np.asarray(action, dtype=np.float64).reshape(ACTION_DIM)
    norm = float(np.linalg.norm(a))
    return a * (MAX_ACTION / norm) if norm > MAX_ACTION else a


def proprio_step(state: Any, action: Any) -> Any:
    """Wall-free proprioception update ``xy + 2 * action`` for world-model rollouts (numpy or torch, ``[..., 2]``)."""
    return state + ACTION_SCALE * action


def move(layout: Layout, xy: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``xy + delta``, stopped at the last free point before the first wall on the way."""
    n = max(1, int(np.ceil(np.linalg.norm(delta) / SUBSTEP)))
    path = xy + np.outer(np.arange(1, n + 1) / n, delta)  # [n, 2]
    free = layout.free(path)
    if free.all():
        return path[-1]
    blocked = int(np.argmin(free))
    return path[blocked - 1] if blocked > 0 else xy.copy()


def success(state: np.ndarray, goal: np.ndarray) -> bool:
    """DINO-WM's rule: the dot within 4.5 px of the goal position."""
    return bool(np.linalg.norm(np.asarray(state)[:2] - np.asarray(goal)[:2]) < SUCCESS_DISTANCE)


def door_path_length(layout: Layout, a: np.ndarray, b: np.ndarray) -> float:
    """Length of the shortest path from ``a`` to ``b`` through the door's centre when they are in different rooms
    (the straight line otherwise): the true-state oracle's cost."""
    a, b = np.asarray(a[:2], float), np.asarray(b[:2], float)
    if layout.side(a) == layout.side(b):
        return float(np.linalg.norm(a - b))
    door = np.array([layout.wall_x, layout.door_y])
    return float(np.linalg.norm(a - door) + np.linalg.norm(door - b))


class WallEnv(gym.Env):
    """Two-Rooms / Wall (see the module docstring).

    Args:
        image_size: side of the rendered frames.
        random_wall: draw the wall and door per reset (WallRandom) instead of the fixed layout.
        max_episode_steps: default episode length of ``vjepa2 collect``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    fps = 10.0
    state_dim, proprio_dim, action_dim = STATE_DIM, PROPRIO_DIM, ACTION_DIM
    action_bound = ("l2", MAX_ACTION)  # the action set: CEM variant and radius
    proprio_step = staticmethod(proprio_step)

    def __init__(
        self,
        image_size: int = 64,
        random_wall: bool = False,
        max_episode_steps: int = 100,
        render_mode: str | None = "rgb_array",
    ) -> None:
        super().__init__()
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' (or None), got {render_mode!r}")
        self.image_size, self.random_wall, self.max_episode_steps = image_size, random_wall, max_episode_steps
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-MAX_ACTION, MAX_ACTION, (ACTION_DIM,), np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "state": gym.spaces.Box(LOW, HIGH, (PROPRIO_DIM,), np.float32),
            }
        )
        centres = (np.arange(image_size) + 0.5) * WORLD / image_size - 0.5  # world coordinate of each pixel
        self._coords = centres
        self._cells = np.clip(np.rint(centres), 0, WORLD - 1).astype(int)
        self.layout = Layout(*FIXED_LAYOUT)
        self.xy = np.zeros(2)
        self.goal_state = np.zeros(STATE_DIM)
        self._waypoint: np.ndarray | None = None

    # ---------------------------------------------------------------- state

    def get_state(self) -> np.ndarray:
        """The full true state ``[x, y, wall_x, door_y]``."""
        return np.array([*self.xy, self.layout.wall_x, self.layout.door_y])

    def set_state(self, state: np.ndarray) -> None:
        """Put the dot (and, with 4 values, the layout) where ``state`` says."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape[-1] >= STATE_DIM:
            self.layout = Layout(float(state[2]), float(state[3]))
        self.xy = state[:2].copy()

    def sample_layout(self) -> Layout:
        """The fixed layout, or a random one from the WallRandom ranges."""
        if not self.random_wall:
            return Layout(*FIXED_LAYOUT)
        return Layout(float(self.np_random.integers(*WALL_RANGE, endpoint=True)),
                      float(self.np_random.integers(*DOOR_RANGE, endpoint=True)))  # fmt: skip

    def sample_start_goal(self) -> tuple[np.ndarray, np.ndarray]:
        """DINO-WM's ``generate_random_state``: positions uniform in opposite rooms, swapped half of the time."""
        rng, lay = self.np_random, self.layout
        left = rng.uniform(LOW + PADDING, lay.wall_x - HALF_WALL - PADDING)
        right = rng.uniform(lay.wall_x + HALF_WALL + PADDING, HIGH - PADDING)
        ys = rng.uniform(LOW + PADDING, HIGH - PADDING, size=2)
        start, goal = np.array([left, ys[0]]), np.array([right, ys[1]])
        return (goal, start) if rng.uniform() < 0.5 else (start, goal)

    # ---------------------------------------------------------------- gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """New episode; ``options`` may fix ``"state"`` (2 or 4 values) and ``"goal"`` (likewise; its layout is
        the episode's)."""
        super().reset(seed=seed)
        options = options or {}
        self.layout = self.sample_layout()
        state = options.get("state")
        if state is not None and len(state) >= STATE_DIM:  # the given layout, before sampling in its rooms
            self.layout = Layout(float(state[2]), float(state[3]))
        start, goal = self.sample_start_goal()
        self.set_state(start if state is None else state)
        goal = np.asarray(options.get("goal", goal), dtype=np.float64)
        self.goal_state = np.array([*goal[:2], self.layout.wall_x, self.layout.door_y])
        self._waypoint = None
        return self._obs(), self._info()

    def simulate(self, action: np.ndarray) -> None:
        """One step of the dynamics, without rendering."""
        self.xy = move(self.layout, self.xy, ACTION_SCALE * clip_action(action))

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.simulate(action)
        info = self._info()
        return self._obs(), float(info["is_success"]), False, False, info

    def render(self) -> np.ndarray:
        return self.render_state(self.get_state())

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """uint8 ``[S, S, 3]`` image of ``state`` (its layout when it has 4 values, else the current one)."""
        state = np.asarray(state, dtype=np.float64)
        layout = Layout(float(state[2]), float(state[3])) if state.shape[-1] >= STATE_DIM else self.layout
        c = self._coords
        d2 = (c[None, :] - state[0]) ** 2 + (c[:, None] - state[1]) ** 2  # [y, x]
        red = np.exp(-d2 / (2 * DOT_STD**2))
        image = np.full((*d2.shape, 3), 255.0)
        image[..., 1] = image[..., 2] = 255.0 * (1.0 - red)
        image[layout.mask()[np.ix_(self._cells, self._cells)]] = 0.0
        return np.rint(image).astype(np.uint8)

    def goal_images(self) -> list[np.ndarray]:
        """The episode's goal image (one goal)."""
        return [self.render_state(self.goal_state)]

    # ---------------------------------------------------------------- scores

    def distance(self, state: np.ndarray | None = None, goal: np.ndarray | None = None) -> float:
        """Euclidean distance (px) of the dot to the goal position."""
        state = self.get_state() if state is None else state
        goal = self.goal_state if goal is None else goal
        return float(np.linalg.norm(np.asarray(state)[:2] - np.asarray(goal)[:2]))

    def oracle_cost(
        self, state: np.ndarray | None = None, goal: np.ndarray | None = None, *, goal_index: int | None = None
    ) -> float:
        """Path length to the goal through the door (px): the true-state planner's energy."""
        if goal_index not in (None, 0):
            raise ValueError(f"{type(self).__name__} has one goal image; goal_index {goal_index} does not exist")
        state = self.get_state() if state is None else state
        return door_path_length(self.layout, state, self.goal_state if goal is None else goal)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self.render(), "state": self.xy.astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        state = self.get_state()
        return {"state": state, "goal_state": self.goal_state.copy(), "distance": self.distance(state),
                "is_success": success(state, self.goal_state)}  # fmt: skip

    # ---------------------------------------------------------------- exploration policies

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        """A uniform action in the L2 disk of radius 1.8."""
        angle, radius = rng.uniform(0, 2 * np.pi), MAX_ACTION * np.sqrt(rng.uniform())
        return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32) * np.float32(radius)

    def scripted_action(self, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
        """A noisy heuristic (LeWM's TwoRoom data): walk to random waypoints, through the door when they are in the
        other room, with steps of N(1, 0.4) clipped to [0.2, 1.8] (PLDM's lengths); with probability ``noise`` a
        uniform random action instead."""
        if rng.uniform() < noise:
            return self.random_action(rng)
        if self._waypoint is None or np.linalg.norm(self._waypoint - self.xy) < 2.0:
            self._waypoint = self._free_point(rng)
        delta = self._subgoal() - self.xy
        length = float(np.clip(rng.normal(1.0, 0.4), 0.2, 1.8))
        length = min(length, float(np.linalg.norm(delta)) / ACTION_SCALE)
        return (delta / max(float(np.linalg.norm(delta)), 1e-9) * length).astype(np.float32)

    def _free_point(self, rng: np.random.Generator) -> np.ndarray:
        while True:
            xy = rng.uniform(LOW + PADDING, HIGH - PADDING, size=2)
            if self.layout.free(xy):
                return xy

    def _subgoal(self) -> np.ndarray:
        """The waypoint; or, on the way to a waypoint in the other room, the door's entrance then its exit (also the
        exit whenever the dot is in the doorway, whose corners would stop a diagonal move)."""
        lay, side = self.layout, self.layout.side(self._waypoint)
        dx, dy = self.xy[0] - lay.wall_x, abs(self.xy[1] - lay.door_y)
        exit_, entrance = lay.wall_x + side * (HALF_WALL + 3.0), lay.wall_x - side * (HALF_WALL + 3.0)
        if abs(dx) <= HALF_WALL + 0.5:  # in the doorway
            return np.array([exit_, lay.door_y])
        if lay.side(self.xy) == side:
            return self._waypoint
        lined_up = dy < DOOR_SPACE - 1.5 and abs(dx) < HALF_WALL + 3.5
        return np.array([exit_ if lined_up else entrance, lay.door_y])
