"""Pose conventions, task layouts, success rules and exploration policies of the simulated Franka tabletop.

Everything here is plain numpy/scipy (no simulator), so it is cheap to import and usable by planners.

Pose convention (V-JEPA 2-AC, DROID; ``app/vjepa_droid/droid.py`` and ``notebooks/utils/mpc_utils.py`` of
facebookresearch/vjepa2):

- a state is ``[x, y, z, roll, pitch, yaw, gripper]``: metres, scipy *extrinsic* ``"xyz"`` Euler angles, and the
  gripper in ``[0, 1]`` (0 open, 1 closed);
- an action is a state delta: ``dxyz = xyz' - xyz``, ``R(dθ) = R(θ') R(θ)^T`` and ``dg = g' - g``, so the next
  pose is ``xyz + dxyz``, ``R(dθ) R(θ)`` and ``clip(g + dg, 0, 1)`` (``compute_new_pose``).

One deliberate difference from scipy's output range: with ``wrap_roll=True`` (the default) the roll angle is
reported in ``[0, 2π)`` instead of ``(-π, π]``. The same rotation is described, but a gripper pointing straight
down (roll = π) no longer flips between +π and -π from one step to the next. Pass ``wrap_roll=False`` to get
scipy's range exactly (e.g. for poses fed to the official DROID-trained predictor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vjepa2.data.poses import sample_l1_ball

TABLE_Z = 0.0
CUBE_HALF = 0.025
DOWN_EULER = np.array([np.pi, 0.0, 0.0])  # gripper pointing down, fingers closing along world y
OBJECT_LOW, OBJECT_HIGH = np.array([0.35, -0.22]), np.array([0.65, 0.22])  # xy area where objects are placed
WORKSPACE_LOW = np.array([0.25, -0.3, 0.02])  # clip box for end-effector targets (fingertips ≈1 cm lower)
WORKSPACE_HIGH = np.array([0.75, 0.3, 0.4])
ACTION_RADIUS = 0.075  # L1 radius of the xyz part of an action (paper, App. B.2)
SUCCESS_RADIUS = 0.04
LIFT_SUCCESS = 0.04  # grasp: the cube's bottom face at least this far above the table
CARRY_LIFT = 0.06  # pick-and-place: height of the held cube above the table in the sub-goals
PREGRASP_STEPS = (6, 3)  # budgets of the optional pre-grasp sub-goals: fingers open around the cube, then closed


# ---------------------------------------------------------------- pose convention


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TaskSpec:
    """A task of the Franka tabletop.

    Attributes:
        name: task name (``reach``, ``grasp``, ``reach_with_object``, ``pick_and_place``).
        max_episode_steps: default step budget.
        subgoal_steps: step budget of each goal image, in order (their sum is the episode budget).
        start_grasped: the episode starts with the cube held in the closed gripper.
        uses_cube: the cube's position is part of the goal.
    """

    name: str
    max_episode_steps: int
    subgoal_steps: tuple[int, ...]
    start_grasped: bool = False
    uses_cube: bool = True

    @property
    def can_pregrasp(self) -> bool:
        """The task starts by grasping the cube (it moves the cube and does not start holding it), so ``pregrasp``
        sub-goals can come first."""
        return self.uses_cube and not self.start_grasped

    def budgets(self, pregrasp: bool = False) -> tuple[int, ...]:
        """Step budget of each goal image, with the two pre-grasp sub-goals first when ``pregrasp``."""
        return (PREGRASP_STEPS if pregrasp and self.can_pregrasp else ()) + self.subgoal_steps


TASKS: dict[str, TaskSpec] = {
    "reach": TaskSpec("reach", 16, (16,), uses_cube=False),
    "grasp": TaskSpec("grasp", 16, (16,)),
    "reach_with_object": TaskSpec("reach_with_object", 16, (16,), start_grasped=True),
    "pick_and_place": TaskSpec("pick_and_place", 18, (4, 10, 4)),  # paper: 3 goal images, 4/10/4 steps
}


@dataclass(frozen=True)
class Layout:
    """The sampled initial scene of an episode (positions in metres, world frame)."""

    ee_start: np.ndarray  # [3]
    cube_pos: np.ndarray  # [3] (for start_grasped tasks: overwritten by the held pose)
    cube_yaw: float
    cylinder_pos: np.ndarray  # [3]
    goal: np.ndarray  # [3]: end-effector goal (reach), cube goal (other tasks)


@dataclass(frozen=True)
class Goal:
    """One goal configuration: the end effector (pointing down), the gripper and the cube.

    Attributes:
        name: ``reach``, ``grasp``, ``near_goal``, ``place``, ``lift``, ``carry``, ``pregrasp`` or ``closed``.
        ee_pos: end-effector position [3].
        gripper: gripper value in [0, 1].
        cube_pos: cube centre [3] (held between the fingers when ``holding``).
        holding: the cube is held in the gripper.
    """

    name: str
    ee_pos: np.ndarray
    gripper: float
    cube_pos: np.ndarray
    holding: bool


def _sample_xy(rng: np.random.Generator, avoid: list[np.ndarray], min_dist: float) -> np.ndarray:
    for _ in range(1000):
        xy = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
        if all(np.linalg.norm(xy - a[:2]) >= min_dist for a in avoid):
            return xy
    raise RuntimeError("could not place an object; relax the layout constraints")


def _sample_near(
    rng: np.random.Generator, centre: np.ndarray, low: np.ndarray, high: np.ndarray, dist: tuple
) -> np.ndarray:
    for _ in range(1000):
        p = rng.uniform(low, high)
        if dist[0] <= np.linalg.norm(p - centre) <= dist[1]:
            return p
    raise RuntimeError("could not sample a point at the requested distance")


def sample_layout(task: str, rng: np.random.Generator) -> Layout:
    """Samples the initial scene and goal of an episode of ``task`` (all randomness from ``rng``)."""
    cube_xy = rng.uniform(OBJECT_LOW, OBJECT_HIGH)
    cube = np.array([*cube_xy, TABLE_Z + CUBE_HALF])
    cube_yaw = float(rng.uniform(-np.pi / 8, np.pi / 8))
    start_low, start_high = np.array([0.35, -0.15, 0.15]), np.array([0.55, 0.15, 0.3])
    if task in ("grasp", "pick_and_place"):  # start near the cube, above it
        start = cube + np.array([*rng.uniform(-0.1, 0.1, size=2), rng.uniform(0.1, 0.2)])
    else:
        start = rng.uniform(start_low, start_high)
    if task == "reach":
        goal = _sample_near(rng, start, np.array([0.3, -0.25, 0.08]), np.array([0.65, 0.25, 0.35]), (0.1, 0.3))
    elif task == "reach_with_object":
        goal = _sample_near(rng, start, np.array([0.3, -0.22, 0.1]), np.array([0.65, 0.22, 0.3]), (0.1, 0.25))
    elif task == "grasp":
        goal = cube + np.array([0.0, 0.0, 0.1])
    elif task == "pick_and_place":
        goal_xy = _sample_near(rng, cube_xy, OBJECT_LOW, OBJECT_HIGH, (0.15, 0.3))
        goal = np.array([*goal_xy, TABLE_Z + CUBE_HALF])
    else:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    avoid = [start, goal, cube] if task != "reach_with_object" else [start, goal]
    cylinder = np.array([*_sample_xy(rng, avoid, 0.13), TABLE_Z + 0.05])
    return Layout(start, cube, cube_yaw, cylinder, goal)


def task_goals(task: str, layout: Layout, pregrasp: bool = False) -> list[Goal]:
    """The goal configurations (one per goal image) of an episode, in order.

    ``pregrasp`` (not the paper's protocol) puts two sub-goals before those of a task that starts by grasping: the
    open fingers around the cube, then the fingers closed on it (budgets :data:`PREGRASP_STEPS`).
    """
    if pregrasp and TASKS[task].can_pregrasp:
        cube = layout.cube_pos
        before = [Goal("pregrasp", cube, 0.0, cube, False), Goal("closed", cube, 1.0, cube, True)]
        return before + task_goals(task, layout)
    g = layout.goal
    if task == "reach":
        return [Goal("reach", g, 0.0, layout.cube_pos, False)]
    if task == "grasp":
        return [Goal("lift", g, 1.0, g, True)]
    if task == "reach_with_object":
        return [Goal("carry", g, 1.0, g, True)]
    lifted = layout.cube_pos + np.array([0.0, 0.0, CARRY_LIFT])
    above_goal = g + np.array([0.0, 0.0, CARRY_LIFT])
    return [
        Goal("grasp", lifted, 1.0, lifted, True),
        Goal("near_goal", above_goal, 1.0, above_goal, True),
        Goal("place", g, 0.0, g, False),
    ]


def subgoal_index(task: str, elapsed_steps: int, pregrasp: bool = False) -> int:
    """Which goal image is active after ``elapsed_steps`` steps, following the task's sub-goal budgets."""
    bounds = np.cumsum(TASKS[task].budgets(pregrasp))
    return int(min(np.searchsorted(bounds, elapsed_steps, side="right"), len(bounds) - 1))


def is_success(task: str, ee_pos: np.ndarray, cube_pos: np.ndarray, grasped: bool, goal: np.ndarray) -> bool:
    """The task's success rule.

    reach: end effector within 4 cm of the goal. grasp: cube held between both fingers with its bottom face at
    least 4 cm above the table. reach_with_object and pick_and_place: cube centre within 4 cm of the goal.
    """
    if task == "reach":
        return bool(np.linalg.norm(ee_pos - goal) < SUCCESS_RADIUS)
    if task == "grasp":
        return bool(grasped and cube_pos[2] - CUBE_HALF - TABLE_Z > LIFT_SUCCESS)
    return bool(np.linalg.norm(cube_pos - goal) < SUCCESS_RADIUS)


def goal_distance(task: str, ee_pos: np.ndarray, cube_pos: np.ndarray, gripper: float, goal: Goal) -> float:
    """Oracle cost in metres: distances of the end effector and (tasks that move it) the cube to a goal, plus a
    gripper term.

    For goals that hold the cube, the end effector is measured to the cube (it has to get there first) and the
    gripper should stay open until it is within 2 cm of the cube; this keeps one-step greedy planners out of the
    "hover at the goal" and "close too early" local minima.
    """
    if not TASKS[task].uses_cube:
        return float(np.linalg.norm(ee_pos - goal.ee_pos) + 0.02 * abs(gripper - goal.gripper))
    cube_cost = np.linalg.norm(cube_pos - goal.cube_pos)
    if goal.holding:
        reach = np.linalg.norm(ee_pos - cube_pos)
        want = goal.gripper if reach < 0.02 else 0.0
        return float(reach + cube_cost + 0.05 * abs(gripper - want))
    return float(np.linalg.norm(ee_pos - goal.ee_pos) + cube_cost + 0.05 * abs(gripper - goal.gripper))


# ---------------------------------------------------------------- policies


def project_l1(v: np.ndarray, radius: float) -> np.ndarray:
    """Scales ``v`` down onto the L1 ball of ``radius`` when it lies outside."""
    n = np.abs(v).sum()
    return v if n <= radius else v * (radius / n)


def random_action(
    rng: np.random.Generator, radius: float = ACTION_RADIUS, rotation: float = 0.0, gripper: bool = True
) -> np.ndarray:
    """A uniform random 7-D action: xyz in the L1 ball of ``radius``, rotation uniform in ±``rotation`` rad,
    gripper delta uniform in [-1, 1] (0 when ``gripper`` is False)."""
    rot = rng.uniform(-rotation, rotation, size=3) if rotation > 0 else np.zeros(3)
    dg = rng.uniform(-1.0, 1.0) if gripper else 0.0
    return np.concatenate([sample_l1_ball(rng, radius), rot, [dg]]).astype(np.float32)


UP = np.array([0.0, 0.0, 1.0])


def _carry_target(task: str, ee: np.ndarray, cube: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, float]:
    """Holding the cube: bring it to the goal; for pick-and-place travel at carry height, lower, then release."""
    if task != "pick_and_place":
        return ee + (goal - cube), 1.0
    if np.linalg.norm(cube[:2] - goal[:2]) > 0.015:
        if cube[2] < goal[2] + CARRY_LIFT - 0.02:
            return ee + 0.05 * UP, 1.0  # lift first
        return ee + (goal + CARRY_LIFT * UP - cube), 1.0
    if cube[2] - goal[2] > 0.008:
        return ee + (goal - cube), 1.0
    return ee, -1.0


def _approach_target(ee: np.ndarray, cube: np.ndarray) -> tuple[np.ndarray, float]:
    """Gripper open: go above the cube (rising first when low), descend to it, then close."""
    if np.linalg.norm(ee[:2] - cube[:2]) > 0.01:
        return (cube + 0.07 * UP if ee[2] > cube[2] + 0.04 else ee + 0.05 * UP), -1.0
    if ee[2] - cube[2] > 0.006:
        return cube, -1.0
    return ee, 1.0


def _expert_target(task: str, snap: dict[str, Any]) -> tuple[np.ndarray, float]:
    """Waypoint and gripper delta of a simple scripted expert, from the true state (a ``FrankaEnv.snapshot``)."""
    ee, cube, goal = snap["ee_pos"], snap["cube_pos"], snap["goal"]
    if task == "reach":
        return goal, -1.0
    if snap["grasped"] and snap["gripper"] > 0.5:
        return _carry_target(task, ee, cube, goal)
    if task == "pick_and_place" and np.linalg.norm(cube - goal) < 0.02:
        return cube + 0.08 * UP, -1.0  # placed: release and back off
    if snap["gripper"] > 0.5:
        return ee + 0.03 * UP, -1.0  # closed on nothing: open and back off
    return _approach_target(ee, cube)


def scripted_action(env: Any, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    """A noisy scripted expert for data collection (works on any task of :class:`FrankaEnv`).

    reach: move to the goal. Others: go above the cube, descend, close, lift, carry the cube to the goal and (pick
    and place) lower and release it. With probability ``noise`` a uniform random action is returned instead, and
    Gaussian noise of std ``noise × 0.03`` m is added to the xyz part, so data covers reach, grasp and transport
    with failures and recoveries.

    Args:
        env: a Franka env (wrappers allowed).
        rng: random generator for the noise.
        noise: 0 gives the deterministic expert; 1 is nearly random.
    """
    if rng.random() < noise:
        return random_action(rng)
    snap = env.unwrapped.snapshot()
    target, dg = _expert_target(env.unwrapped.task, snap)
    dxyz = project_l1(target - snap["ee_pos"] + rng.normal(0.0, 0.03 * noise, size=3), ACTION_RADIUS)
    return np.concatenate([dxyz, np.zeros(3), [dg]]).astype(np.float32)
