"""A simulated Franka Panda tabletop for V-JEPA 2-AC planning: pybullet physics, offline CPU rendering.

The scene is the Panda bundled with ``pybullet_data`` (fixed base at the origin, end-effector link 11
``panda_grasptarget``) on a table whose top is at z = 0, a 5 cm red cube and a blue cylinder ("cup", a distractor).
Images come from a fixed third-person camera through pybullet's TinyRenderer, so no display or GPU is needed.

Actions follow V-JEPA 2-AC (DROID): ``[dx, dy, dz, droll, dpitch, dyaw, dgripper]``, applied to the measured
end-effector pose as ``xyz + dxyz``, ``R(dθ) R(θ)`` (scipy extrinsic ``"xyz"`` Euler) and ``clip(g + dg, 0, 1)``;
see :mod:`vjepa2.envs.franka_tasks`. The target is clipped to a workspace box, solved with pybullet's IK and
tracked with position control for ``substeps`` physics steps at 240 Hz. The state's gripper value is the
*commanded* one (the fingers stop on a held cube); the measured finger opening is in ``info["finger_width"]``.

One pybullet client per env (``DIRECT``), created in the constructor and closed by :meth:`FrankaEnv.close`.
"""

from __future__ import annotations

import functools
import itertools
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as pb
import pybullet_data
from scipy.spatial.transform import Rotation

from vjepa2.data.poses import euler_to_matrix, matrix_to_euler, wrap_euler
from vjepa2.envs.franka_tasks import (
    CUBE_HALF,
    DOWN_EULER,
    TASKS,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    Goal,
    Layout,
    goal_distance,
    is_success,
    sample_layout,
    subgoal_index,
    task_goals,
)

EE_LINK = 11
ARM_JOINTS = list(range(7))
FINGER_JOINTS = [9, 10]
HOME_Q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]
ARM_FORCES = [87.0] * 4 + [12.0] * 3
FINGER_OPEN, FINGER_FORCE = 0.04, 40.0
CYLINDER_RADIUS, CYLINDER_HEIGHT = 0.035, 0.1
DOWN_QUAT = Rotation.from_euler("xyz", DOWN_EULER).as_quat()  # xyzw, as pybullet
SETTLE_STEPS = 40
STATE_LOW = np.array([-1.0, -1.0, -1.0, -np.pi, -np.pi, -np.pi, 0.0], dtype=np.float32)  # loose bounds
STATE_HIGH = np.array([1.0, 1.0, 1.0, 2 * np.pi, np.pi, np.pi, 1.0], dtype=np.float32)
_ENV_IDS = itertools.count()


class _Client:
    """pybullet bound to one ``DIRECT`` client (like ``pybullet_utils.BulletClient``, minus its stdout print)."""

    def __init__(self) -> None:
        self.client = pb.connect(pb.DIRECT)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(pb, name)
        return functools.partial(attr, physicsClientId=self.client) if callable(attr) else attr


@dataclass(frozen=True)
class Camera:
    """A fixed pinhole camera: eye and target in world metres, vertical field of view in degrees."""

    eye: tuple[float, float, float] = (1.3, 0.4, 0.85)
    target: tuple[float, float, float] = (0.45, 0.0, 0.15)
    fov: float = 48.0
    near: float = 0.05
    far: float = 4.0


@dataclass(frozen=True)
class SimState:
    """A snapshot of the simulation, restorable with :meth:`FrankaEnv.set_state`.

    ``bullet_id`` is a pybullet ``saveState`` id (exact, contacts included), valid only in the env ``owner``;
    the explicit arrays restore the same configuration in any env (without solver caches).
    """

    owner: int
    bullet_id: int | None
    joints: np.ndarray  # [9, 2]: position, velocity of arm joints 0-6 and fingers 9, 10
    bodies: np.ndarray  # [2, 13]: cube, cylinder: pos 3, quat xyzw 4, linear velocity 3, angular velocity 3
    gripper: float
    elapsed: int


class FrankaEnv(gym.Env):
    """Franka Panda tabletop with goal images (reach, grasp, reach-with-object, pick-and-place).

    Observations are ``{"image": uint8 [H, W, 3], "state": float32 [7]}`` with the state
    ``[x, y, z, roll, pitch, yaw, gripper]``; ``info`` holds true object poses, the ee pose, ``is_success`` and the
    oracle cost. Rewards are 1.0 on success, else 0.0. Episodes never terminate by themselves unless
    ``terminate_on_success``; the step budget is enforced by the ``TimeLimit`` wrapper of ``gym.make``.

    Args:
        task: one of ``reach``, ``grasp``, ``reach_with_object``, ``pick_and_place``.
        image_size: square image side in pixels.
        substeps: physics steps (240 Hz) per action.
        camera: the fixed camera.
        wrap_roll: report roll in [0, 2π) rather than (-π, π] (see :mod:`vjepa2.envs.franka_tasks`).
        terminate_on_success: end the episode as soon as the task succeeds.
        robot_mesh: ``"collision"`` draws the Panda with its low-poly collision meshes (fast, the default) and
            ``"visual"`` with the detailed visual meshes (about 15-40 ms more per image).
        render_mode: only ``"rgb_array"`` (``render()`` returns the current camera image).
        pregrasp: grasp and pick-and-place start with two more goal images, the open fingers around the cube and
            then closed on it (not the paper's protocol; :func:`~vjepa2.envs.franka_tasks.task_goals`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        task: str = "reach",
        image_size: int = 64,
        substeps: int = 80,
        camera: Camera | None = None,
        wrap_roll: bool = True,
        terminate_on_success: bool = False,
        robot_mesh: str = "collision",
        render_mode: str | None = "rgb_array",
        pregrasp: bool = False,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
        self.task, self.task_spec, self.pregrasp = task, TASKS[task], pregrasp
        self.subgoal_steps = self.task_spec.budgets(pregrasp)
        self.max_episode_steps = sum(self.subgoal_steps)
        self.image_size, self.substeps, self.wrap_roll = image_size, substeps, wrap_roll
        self.terminate_on_success, self.render_mode = terminate_on_success, render_mode
        self.camera = camera or Camera()
        if robot_mesh not in ("collision", "visual"):
            raise ValueError(f"robot_mesh must be 'collision' or 'visual', got {robot_mesh!r}")
        self.robot_mesh = robot_mesh
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "state": gym.spaces.Box(STATE_LOW, STATE_HIGH, (7,), np.float32),
            }
        )
        high = np.array([0.075] * 3 + [np.pi / 4] * 3 + [1.0], dtype=np.float32)
        self.action_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.sim = _Client()
        self._uid = next(_ENV_IDS)
        self._build_scene()
        self._layout: Layout | None = None
        self._goals: list[Goal] = []
        self._goal_images: list[np.ndarray] | None = None
        self.gripper, self.elapsed = 0.0, 0

    # ------------------------------------------------------------ scene

    def _build_scene(self) -> None:
        data = pybullet_data.getDataPath()
        self.sim.setGravity(0, 0, -9.81)
        self.sim.setPhysicsEngineParameter(deterministicOverlappingPairs=1)  # exact state restores
        self.sim.loadURDF(os.path.join(data, "plane.urdf"), [0, 0, -0.3])
        self._table = self._box([0.5, 0.6, 0.02], [0.35, 0.0, -0.02], [0.72, 0.58, 0.42, 1], mass=0.0)
        self.robot = self._load_panda(data)
        self.cube = self._box([CUBE_HALF] * 3, [0.5, 0.0, CUBE_HALF], [0.85, 0.12, 0.1, 1], mass=0.1)
        r, h = CYLINDER_RADIUS, CYLINDER_HEIGHT
        vis = self.sim.createVisualShape(pb.GEOM_CYLINDER, radius=r, length=h, rgbaColor=[0.1, 0.3, 0.85, 1])
        col = self.sim.createCollisionShape(pb.GEOM_CYLINDER, radius=r, height=h)
        self.cylinder = self.sim.createMultiBody(0.2, col, vis, [0.5, -0.2, 0.05])
        for link in FINGER_JOINTS:
            self.sim.changeDynamics(self.robot, link, lateralFriction=1.5)
        self.sim.changeDynamics(self.cube, -1, lateralFriction=1.0)
        limits = [self.sim.getJointInfo(self.robot, j)[8:10] for j in ARM_JOINTS + FINGER_JOINTS]
        self._ik_args = {  # null-space IK: joint limits, pulled towards the home pose
            "lowerLimits": [lo for lo, _ in limits],
            "upperLimits": [hi for _, hi in limits],
            "jointRanges": [hi - lo for lo, hi in limits],
            "restPoses": HOME_Q + [FINGER_OPEN] * 2,
            "maxNumIterations": 100,
            "residualThreshold": 1e-5,
        }
        self._view = self.sim.computeViewMatrix(self.camera.eye, self.camera.target, [0, 0, 1])
        self._proj = self.sim.computeProjectionMatrixFOV(self.camera.fov, 1.0, self.camera.near, self.camera.far)
        self._blank_state = self.sim.saveState()

    def _load_panda(self, data: str) -> int:
        """Loads the bundled Panda with coupled fingers.

        With ``robot_mesh="collision"`` its collision meshes (≈3.5k triangles) also serve as visuals, which renders
        ≈40x faster in TinyRenderer than the ≈100k-triangle visual meshes; hand and fingers are then drawn darker.
        """
        root = os.path.join(data, "franka_panda")
        path = os.path.join(root, "panda.urdf")
        if self.robot_mesh == "visual":
            robot = self.sim.loadURDF(path, useFixedBase=True)
        else:
            with open(path) as f:
                urdf = f.read().replace("package://meshes/visual/", "package://meshes/collision/")
            with tempfile.TemporaryDirectory() as tmp:
                low_poly = os.path.join(tmp, "panda_low_poly.urdf")
                with open(low_poly, "w") as f:
                    f.write(urdf.replace("package://", root + os.sep))
                robot = self.sim.loadURDF(low_poly, useFixedBase=True)
            for link in [8, *FINGER_JOINTS]:
                self.sim.changeVisualShape(robot, link, rgbaColor=[0.35, 0.35, 0.38, 1])
        # Coupled fingers, as on the real gripper: a held object cannot slide sideways between them.
        gear = self.sim.createConstraint(robot, 9, robot, 10, pb.JOINT_GEAR, [1, 0, 0], [0, 0, 0], [0, 0, 0])
        self.sim.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=50)
        return robot

    def _box(self, half: list[float], pos: list[float], rgba: list[float], mass: float) -> int:
        vis = self.sim.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=rgba)
        col = self.sim.createCollisionShape(pb.GEOM_BOX, halfExtents=half)
        return self.sim.createMultiBody(mass, col, vis, pos)

    # ------------------------------------------------------------ low-level robot control

    def _ik(self, pos: np.ndarray, quat: np.ndarray) -> list[float]:
        q = self.sim.calculateInverseKinematics(self.robot, EE_LINK, list(pos), list(quat), **self._ik_args)
        return list(q[:7])

    def _reset_joints(self, arm: list[float], finger: float | None = None) -> None:
        """Sets joint positions directly (no physics, zero velocity)."""
        for j, q in zip(ARM_JOINTS, arm, strict=True):
            self.sim.resetJointState(self.robot, j, q)
        for j in FINGER_JOINTS if finger is not None else []:
            self.sim.resetJointState(self.robot, j, finger)

    def _set_arm(self, q: list[float]) -> None:
        self.sim.setJointMotorControlArray(self.robot, ARM_JOINTS, pb.POSITION_CONTROL, q, forces=ARM_FORCES)

    def _set_fingers(self, gripper: float) -> None:
        width = FINGER_OPEN * (1.0 - gripper)
        for j in FINGER_JOINTS:
            self.sim.setJointMotorControl2(self.robot, j, pb.POSITION_CONTROL, width, force=FINGER_FORCE)

    def _drive(self, pos: np.ndarray, quat: np.ndarray, steps: int) -> None:
        """Position-controls the arm to ``pos``/``quat`` for ``steps`` physics steps.

        The null-space IK (pulled towards the home pose, so the arm never wanders into odd configurations) is
        biased by about 2 mm; after two thirds of the steps the target is shifted by the remaining position error
        and solved again, which brings the error to a fraction of a millimetre.
        """
        first = steps - steps // 3
        target = np.asarray(pos, dtype=np.float64)
        for n in (first, steps - first):
            self._set_arm(self._ik(target, quat))
            for _ in range(n):
                self.sim.stepSimulation()
            target = target + (pos - self.ee_pose()[0])

    def _hold(self) -> None:
        """Position targets = current arm joints, fingers driven from the commanded gripper value."""
        self._set_arm([self.sim.getJointState(self.robot, j)[0] for j in ARM_JOINTS])
        self._set_fingers(self.gripper)

    def _teleport_arm(self, pos: np.ndarray, quat: np.ndarray, finger: float, rounds: int = 4) -> None:
        """Sets the joints (no physics, motors untouched) so that the end effector is at ``pos``/``quat``.

        Starts from the home pose; each round solves the IK, sets the joints and shifts the IK target by the
        remaining error (the null-space IK alone is ≈2 mm off), ending within ≈0.01 mm.
        """
        target = np.asarray(pos, dtype=np.float64)
        self._reset_joints(HOME_Q, finger)
        for _ in range(rounds):
            self._reset_joints(self._ik(target, quat))
            target = target + (pos - self.ee_pose()[0])

    def _clear_contacts(self) -> None:
        """Drops every cached contact (``restoreState`` keeps stale ones, whose warm-start impulses would make
        the next steps depend on history): the objects go far apart, then the broadphase forgets their pairs."""
        for i, body in enumerate((self.cube, self.cylinder)):
            self._place(body, np.array([10.0 * (i + 1), 0.0, 10.0]))
        self._reset_joints(HOME_Q, FINGER_OPEN)
        self.sim.performCollisionDetection()

    def _place(self, body: int, pos: np.ndarray, yaw: float = 0.0) -> None:
        quat = self.sim.getQuaternionFromEuler([0.0, 0.0, yaw])
        self.sim.resetBasePositionAndOrientation(body, list(pos), quat)
        self.sim.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0])

    def _pose_goal(self, goal: Goal) -> None:
        """Teleports the arm, fingers and cube into a goal configuration (no physics, motors untouched)."""
        self._teleport_arm(goal.ee_pos, DOWN_QUAT, CUBE_HALF if goal.holding else FINGER_OPEN * (1 - goal.gripper))
        self._place(self.cube, goal.cube_pos)

    # ------------------------------------------------------------ measurements

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position [3] and extrinsic ``"xyz"`` Euler angles [3] (measured)."""
        ls = self.sim.getLinkState(self.robot, EE_LINK, computeForwardKinematics=True)
        rot = np.array(self.sim.getMatrixFromQuaternion(ls[5])).reshape(3, 3)
        return np.array(ls[4]), matrix_to_euler(rot, self.wrap_roll)

    def _body_pose(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        pos, quat = self.sim.getBasePositionAndOrientation(body)
        return np.array(pos), np.array(quat)

    def grasped(self) -> bool:
        """Whether the cube touches (within 3 mm) both fingers."""
        return all(self.sim.getClosestPoints(self.cube, self.robot, 0.003, linkIndexB=j) for j in FINGER_JOINTS)

    def snapshot(self) -> dict[str, Any]:
        """True state of the scene (ee pose, gripper, object poses, grasp flag, the final goal position)."""
        ee_pos, ee_euler = self.ee_pose()
        cube_pos, cube_quat = self._body_pose(self.cube)
        cyl_pos, cyl_quat = self._body_pose(self.cylinder)
        fingers = [self.sim.getJointState(self.robot, j)[0] for j in FINGER_JOINTS]
        return {
            "ee_pos": ee_pos, "ee_euler": ee_euler, "gripper": self.gripper, "finger_width": float(sum(fingers)),
            "cube_pos": cube_pos, "cube_quat": cube_quat, "cylinder_pos": cyl_pos, "cylinder_quat": cyl_quat,
            "grasped": self.grasped(), "goal": None if self._layout is None else self._layout.goal.copy(),
        }  # fmt: skip

    def state(self) -> np.ndarray:
        """The 7-D state ``[xyz, extrinsic xyz Euler, gripper]`` (float32)."""
        pos, euler = self.ee_pose()
        return np.concatenate([pos, euler, [self.gripper]]).astype(np.float32)

    def render(self) -> np.ndarray:
        """The camera image, uint8 ``[H, W, 3]``."""
        s = self.image_size
        flags = {"renderer": pb.ER_TINY_RENDERER, "flags": pb.ER_NO_SEGMENTATION_MASK}
        img = self.sim.getCameraImage(s, s, self._view, self._proj, **flags)[2]
        return np.asarray(img, dtype=np.uint8).reshape(s, s, 4)[..., :3].copy()

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self.render(), "state": self.state()}

    def _info(self) -> dict[str, Any]:
        snap = self.snapshot()
        idx = subgoal_index(self.task, self.elapsed, self.pregrasp)
        ok = is_success(self.task, snap["ee_pos"], snap["cube_pos"], snap["grasped"], self._layout.goal)
        final = self._goals[-1]  # the distance the success rules measure: the cube's, or the end effector's (reach)
        distance = np.linalg.norm(
            snap["cube_pos"] - final.cube_pos if self.task_spec.uses_cube else snap["ee_pos"] - final.ee_pos
        )
        return {**snap, "subgoal": idx, "is_success": ok, "oracle_cost": self.oracle_cost(snap, idx),
                "distance": float(distance)}  # fmt: skip

    # ------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Starts an episode; ``seed`` fixes the layout and goal. ``options={"layout": Layout}`` forces a layout."""
        super().reset(seed=seed)
        self._clear_contacts()
        self.sim.restoreState(self._blank_state)
        layout = (options or {}).get("layout") or sample_layout(self.task, self.np_random)
        self._layout, self._goals, self._goal_images = layout, task_goals(self.task, layout, self.pregrasp), None
        self.elapsed = 0
        held = self.task_spec.start_grasped
        self.gripper = 1.0 if held else 0.0
        self._teleport_arm(layout.ee_start, DOWN_QUAT, CUBE_HALF if held else FINGER_OPEN)
        self._place(self.cylinder, layout.cylinder_pos)
        self._place(self.cube, layout.ee_start if held else layout.cube_pos, 0.0 if held else layout.cube_yaw)
        self._hold()
        for _ in range(SETTLE_STEPS):
            self.sim.stepSimulation()
        return self._obs(), self._info()

    def simulate(self, action: np.ndarray) -> None:
        """Executes one action in the simulator only (no image, no step count): for oracle planners."""
        a = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        pos, euler = self.ee_pose()
        target = np.clip(pos + a[:3], WORKSPACE_LOW, WORKSPACE_HIGH)
        quat = Rotation.from_matrix(euler_to_matrix(a[3:6]) @ euler_to_matrix(euler)).as_quat()
        self.gripper = float(np.clip(self.gripper + a[6], 0.0, 1.0))
        self._set_fingers(self.gripper)
        self._drive(target, quat, self.substeps)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Applies a 7-D action ``[dx, dy, dz, droll, dpitch, dyaw, dgripper]`` (clipped to the action space)."""
        if self._layout is None:
            raise RuntimeError("call reset() before step()")
        self.simulate(action)
        self.elapsed += 1
        info = self._info()
        terminated = bool(self.terminate_on_success and info["is_success"])
        return self._obs(), float(info["is_success"]), terminated, False, info

    def close(self) -> None:
        """Disconnects the pybullet client."""
        if self.sim is not None:
            self.sim.disconnect()
            self.sim = None

    # ------------------------------------------------------------ goals and oracle

    @property
    def goals(self) -> list[Goal]:
        """The goal configurations of the current episode (one per goal image)."""
        return list(self._goals)

    def goal_states(self) -> list[np.ndarray]:
        """7-D goal states (end effector pointing down), one per goal image."""
        euler = wrap_euler(DOWN_EULER) if self.wrap_roll else DOWN_EULER
        return [np.concatenate([g.ee_pos, euler, [g.gripper]]).astype(np.float32) for g in self._goals]

    def goal_images(self) -> list[np.ndarray]:
        """Goal images, uint8 ``[H, W, 3]`` each: the scene posed in each goal configuration, same camera.

        The distractor stays where it is at the start of the episode; the simulation state is restored afterwards.
        """
        if self._goal_images is None:
            saved = self.sim.saveState()
            images = []
            for goal in self._goals:
                self._pose_goal(goal)
                images.append(self.render())
            self.sim.restoreState(saved)
            self.sim.removeState(saved)
            self._goal_images = images
        return [im.copy() for im in self._goal_images]

    def oracle_cost(self, snapshot: dict[str, Any] | None = None, goal_index: int | None = None) -> float:
        """True distance to a goal (metres; see ``franka_tasks.goal_distance``), for "simulator as model" planners.

        Args:
            snapshot: a :meth:`snapshot` or ``info`` dict; ``None`` measures the current simulation.
            goal_index: which goal image; ``None`` is the one active at the current step.
        """
        snap = self.snapshot() if snapshot is None else snapshot
        goal = self._goals[subgoal_index(self.task, self.elapsed, self.pregrasp) if goal_index is None else goal_index]
        return goal_distance(self.task, snap["ee_pos"], snap["cube_pos"], snap["gripper"], goal)

    def get_state(self, exact: bool = True) -> SimState:
        """Snapshot of the simulation. ``exact`` also keeps a pybullet ``saveState`` (free it with
        :meth:`release_state`) so that restoring reproduces the next steps bit for bit."""
        joints = np.array([self.sim.getJointState(self.robot, j)[:2] for j in ARM_JOINTS + FINGER_JOINTS])
        bodies = []
        for body in (self.cube, self.cylinder):
            pos, quat = self.sim.getBasePositionAndOrientation(body)
            lin, ang = self.sim.getBaseVelocity(body)
            bodies.append([*pos, *quat, *lin, *ang])
        bullet_id = self.sim.saveState() if exact else None
        return SimState(self._uid, bullet_id, joints, np.array(bodies), self.gripper, self.elapsed)

    def set_state(self, state: SimState) -> None:
        """Restores a :meth:`get_state` snapshot (exactly when it was taken from this env)."""
        self._clear_contacts()
        if state.bullet_id is not None and state.owner == self._uid:
            self.sim.restoreState(state.bullet_id)
        else:
            for j, (q, qd) in zip(ARM_JOINTS + FINGER_JOINTS, state.joints, strict=True):
                self.sim.resetJointState(self.robot, j, q, qd)
            for body, b in zip((self.cube, self.cylinder), state.bodies, strict=True):
                self.sim.resetBasePositionAndOrientation(body, b[:3], b[3:7])
                self.sim.resetBaseVelocity(body, b[7:10], b[10:13])
        self.gripper, self.elapsed = state.gripper, state.elapsed
        self._hold()

    def release_state(self, state: SimState) -> None:
        """Frees the pybullet copy held by an exact :class:`SimState` of this env."""
        if state.bullet_id is not None and state.owner == self._uid:
            self.sim.removeState(state.bullet_id)
