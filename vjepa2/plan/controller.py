"""A controller for a real arm: V-JEPA 2-AC planning behind one call per control step.

::

    controller = Controller.from_file("runs/wm/latest.pt", ControllerSettings(cem=CEM_CPU, device="cuda"))
    controller.set_goal([grasp, near_goal, place], budgets=[4, 10, 4])  # or one goal image
    while running:  # at controller.fps
        action = controller.act(camera_frame, ee_pose)  # uint8 [H, W, 3], [7] -> [7] pose delta, clipped
        robot.move_by(action)

The controller is a thin front over :class:`~vjepa2.plan.mpc.LatentPlanner` (or any
:class:`~vjepa2.plan.mpc.Planner`): it checks the inputs, brings any camera frame to the model's resolution with
the transform the model was trained with, keeps the sub-goal schedule, clips every action to the limits of
:class:`ControllerSettings` and times each plan. States and actions follow :mod:`vjepa2.data.poses`: a state is
``[x, y, z, roll, pitch, yaw, gripper]`` (metres, extrinsic xyz Euler radians, gripper 0 open .. 1 closed), an
action the delta to the next state. See ``docs/real-robot.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vjepa2.data.poses import wrap_angle, wrap_euler
from vjepa2.data.transforms import parse_transform
from vjepa2.plan.cem import CEM_PAPER, CEMConfig
from vjepa2.plan.load import (
    CheckpointInfo,
    frame_preprocess,
    load_world_model,
    pick_transform,
    predicts_poses,
    read_checkpoint_info,
)
from vjepa2.plan.mpc import LatentPlanner, Planner, Preprocess
from vjepa2.plan.world_model import WorldModel

POSE_DIM = 7
# Per-axis bounds of an action: xyz metres (the paper's L1 radius), rotation radians (CEM's rotation_max), gripper.
DEFAULT_LIMITS = (0.075, 0.075, 0.075, 0.1, 0.1, 0.1, 1.0)
# ``(sub-goal index, steps taken toward it, state [7], energy of the last plan or NaN) -> advance to the next?``
SwitchRule = Callable[[int, int, np.ndarray, float], bool]


@dataclass(frozen=True)
class ControllerSettings:
    """Everything the controller plans and clips with.

    Attributes:
        cem: CEM settings of the latent planner (the paper's: 800 samples x 10 iterations, L1 ball 0.075).
        horizon: actions per CEM sequence; None keeps ``cem.horizon``.
        action_limits: per-axis bound of the returned action ``[7]`` (metres, radians, gripper delta).
        max_translation: bound of the Euclidean norm of the xyz delta per step (metres).
        workspace: ``((x, y, z) low, (x, y, z) high)``: the xyz delta is cut so that the commanded position stays
            inside this box (metres, the state's frame); None: no box.
        wrap_roll: None uses the state as given; True maps its roll to ``[0, 2pi)`` (the Franka sim's
            trajectories); False to ``[-pi, pi)`` (scipy's range: DROID and the official model).
        transform: frame transform, ``"auto"`` (what the checkpoint records; ``droid`` for the official file),
            ``"resize"``, ``"center"`` or ``"droid"`` (optionally ``+blur=S``).
        dtype: world-model autocast dtype (``"bf16"``, ``"fp16"``, ``"fp32"``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    cem: CEMConfig = CEM_PAPER
    horizon: int | None = None
    action_limits: tuple[float, ...] = DEFAULT_LIMITS
    max_translation: float = 0.075
    workspace: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    wrap_roll: bool | None = None
    transform: str = "auto"
    dtype: str = "bf16"
    device: str = "auto"

    def __post_init__(self) -> None:
        if len(self.action_limits) != POSE_DIM or min(self.action_limits) < 0:
            raise ValueError(f"action_limits must be {POSE_DIM} values >= 0, got {self.action_limits}")
        if not self.max_translation > 0:
            raise ValueError(f"max_translation must be > 0, got {self.max_translation}")
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.workspace is not None:
            low, high = (np.asarray(b, dtype=np.float64) for b in self.workspace)
            if low.shape != (3,) or high.shape != (3,) or not np.all(low < high):
                raise ValueError(f"workspace must be ((x, y, z) low, (x, y, z) high), low < high; got {self.workspace}")

    @property
    def cem_config(self) -> CEMConfig:
        """``cem`` with ``horizon`` applied."""
        return self.cem if self.horizon is None else replace(self.cem, horizon=self.horizon)


def clip_action(action: np.ndarray, state: np.ndarray, settings: ControllerSettings) -> np.ndarray:
    """An action ``[7]`` inside the workspace box, then the per-axis limits, then the translation norm bound."""
    a = np.asarray(action, dtype=np.float64).copy()
    if settings.workspace is not None:
        xyz = np.asarray(state[:3], dtype=np.float64)
        a[:3] = np.clip(xyz + a[:3], *settings.workspace) - xyz
    limits = np.asarray(settings.action_limits, dtype=np.float64)
    a = np.clip(a, -limits, limits)
    norm = float(np.linalg.norm(a[:3]))
    if norm > settings.max_translation:
        a[:3] *= settings.max_translation / norm
    return a.astype(np.float32)


def center_square(image: np.ndarray) -> np.ndarray:
    """The centred ``s x s`` crop of ``[H, W, C]``, ``s = min(H, W)`` (a view)."""
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return image[top : top + s, left : left + s]


def camera_preprocess(transform: str, resolution: int) -> Preprocess:
    """uint8 ``[H, W, 3]`` of any size -> normalised ``[3, resolution, resolution]`` with a training transform.

    ``resize`` was trained on square frames, so other frames are centre-cropped to a square first (no squashing);
    ``droid`` and ``center`` crop as they did in training.
    """
    base = frame_preprocess(transform, resolution)
    if parse_transform(transform)[0] != "resize":
        return base
    return lambda image: base(center_square(image))


def _check_image(image: Any, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {tuple(getattr(image, 'shape', ()))}"
        raise ValueError(f"{name} must be a uint8 RGB array [H, W, 3], got {got}")
    return image


class Controller:
    """Next action from the camera frame and the end-effector pose, toward a goal image or a sub-goal schedule.

    Args:
        planner: ``plan({"image", "state"}, goal image) -> action [7]``, e.g. a :class:`LatentPlanner` whose
            ``preprocess`` accepts frames of any size (:meth:`from_world_model` builds one).
        settings: limits and planning settings (``cem``, ``transform``, ``dtype``, ``device`` are used when the
            controller builds the planner).
        fps: the rate the world model was trained at (``data.fps``), if known: call :meth:`act` at this rate.

    Attributes:
        last_seconds: seconds the last plan took.
        last_info: ``subgoal``, ``steps`` (toward it), ``seconds``, ``raw_action`` (before clipping), ``clipped``,
            ``energy`` (the planner's best energy, NaN if it has none).
    """

    def __init__(self, planner: Planner, settings: ControllerSettings | None = None, fps: float | None = None) -> None:
        self.planner, self.settings, self.fps = planner, settings or ControllerSettings(), fps
        self._goals: list[np.ndarray] = []
        self._budgets: list[int] | None = None
        self._switch: SwitchRule | None = None
        self.reset()

    @classmethod
    def from_world_model(
        cls, world_model: WorldModel, settings: ControllerSettings | None = None, transform: str | None = None,
        fps: float | None = None,
    ) -> Controller:  # fmt: skip
        """A controller planning with ``world_model`` (a 7-D pose predictor); ``transform`` as in its training
        (None: ``settings.transform``, where ``auto`` means ``resize``)."""
        settings = settings or ControllerSettings()
        cfg = world_model.predictor.cfg
        if not predicts_poses(cfg):
            raise ValueError(f"the controller drives 7-D pose models; this one takes {cfg.state_dim}-D states")
        transform = transform or pick_transform(settings.transform, CheckpointInfo())
        preprocess = camera_preprocess(transform, cfg.img_size)
        return cls(LatentPlanner(world_model, settings.cem_config, preprocess), settings, fps)

    @classmethod
    def from_file(
        cls, path: str | Path, settings: ControllerSettings | None = None, encoder: str | None = None,
        predictor: str | None = None,
    ) -> Controller:  # fmt: skip
        """A controller from a ``train-ac`` checkpoint (transform and fps as recorded) or a file plus presets."""
        settings = settings or ControllerSettings()
        info = read_checkpoint_info(path)
        wm = load_world_model(path, settings.dtype, settings.device, encoder, predictor)
        fps = ((info.train or {}).get("data") or {}).get("fps")
        return cls.from_world_model(wm, settings, pick_transform(settings.transform, info), fps)

    @classmethod
    def from_release(cls, name: str = "ac_vit_giant", settings: ControllerSettings | None = None) -> Controller:
        """The released V-JEPA 2-AC (downloaded once into the torch hub cache): DROID transform, 4 fps."""
        from vjepa2.weights.hub import fetch, release

        rel, settings = release(name), settings or ControllerSettings()
        if rel.kind != "ac":
            raise ValueError(f"{name!r} is not an action-conditioned world model (a {rel.kind})")
        wm = load_world_model(fetch(name), settings.dtype, settings.device, rel.encoder, rel.preset)
        transform = "droid" if settings.transform == "auto" else settings.transform
        return cls.from_world_model(wm, settings, transform, fps=4.0)

    @property
    def period(self) -> float | None:
        """Seconds between actions (``1 / fps``), if the fps is known."""
        return None if not self.fps else 1.0 / self.fps

    @property
    def subgoal(self) -> int:
        """Index of the sub-goal being planned for."""
        return self._stage

    def set_goal(
        self, goal: np.ndarray | Sequence[np.ndarray], budgets: Sequence[int] | None = None,
        switch: SwitchRule | None = None,
    ) -> None:  # fmt: skip
        """Plan toward one goal image, or sub-goals in order (a :meth:`reset` follows).

        Args:
            goal: uint8 ``[H, W, 3]`` from the control camera, or a list of them (the last is the final goal).
            budgets: steps spent on each sub-goal before the next one (the last stays); one per image.
            switch: a :data:`SwitchRule`, asked before each plan; True moves on (with ``budgets``: either).
        """
        goals = [goal] if isinstance(goal, np.ndarray) else list(goal)
        if not goals:
            raise ValueError("goal: need at least one goal image")
        goals = [_check_image(g, f"goal[{i}]") for i, g in enumerate(goals)]
        if budgets is not None:
            budgets = [int(b) for b in budgets]
            if len(budgets) != len(goals) or min(budgets) < 1:
                raise ValueError(f"budgets must be {len(goals)} integers >= 1 (one per goal image), got {budgets}")
        elif switch is None and len(goals) > 1:
            raise ValueError(f"{len(goals)} goal images: pass budgets (steps per sub-goal) or a switch rule")
        self._goals, self._budgets, self._switch = goals, budgets, switch
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start over: first sub-goal, planner re-seeded (``cem.seed`` by default), timing cleared."""
        self._stage, self._steps = 0, 0
        self.last_seconds, self.last_info = math.nan, {}
        if hasattr(self.planner, "reset"):
            self.planner.reset(self.settings.cem.seed if seed is None else seed)

    def _advance(self, state: np.ndarray) -> None:
        if self._stage + 1 >= len(self._goals):
            return
        spent = self._budgets is not None and self._steps >= self._budgets[self._stage]
        energy = float(self.last_info.get("energy", math.nan)) if self._steps else math.nan
        if spent or (self._switch is not None and self._switch(self._stage, self._steps, state, energy)):
            self._stage, self._steps = self._stage + 1, 0

    def act(self, frame: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The next action.

        Args:
            frame: uint8 RGB ``[H, W, 3]`` from the control camera, any size.
            state: ``[7]`` end-effector pose ``[x, y, z, roll, pitch, yaw, gripper]``.

        Returns:
            float32 ``[7]`` pose delta inside the settings' limits.

        Raises:
            ValueError: a bad frame or state (the message names its shape), or no goal set.
            RuntimeError: the planner returned a non-finite action (stop the robot).
        """
        frame = _check_image(frame, "frame")
        state = np.asarray(state, dtype=np.float32)
        if state.shape != (POSE_DIM,) or not np.all(np.isfinite(state)):
            raise ValueError(f"state must be {POSE_DIM} finite values [xyz, rpy, gripper], got shape {state.shape}")
        if not self._goals:
            raise ValueError("no goal: call set_goal(image or [images]) before act()")
        if self.settings.wrap_roll is not None:
            rpy = wrap_euler(state[3:6]) if self.settings.wrap_roll else wrap_angle(state[3:6])
            state = np.concatenate([state[:3], rpy, state[6:]]).astype(np.float32)
        self._advance(state)
        start = time.perf_counter()
        raw = np.asarray(self.planner.plan({"image": frame, "state": state}, self._goals[self._stage]), np.float32)
        self.last_seconds = time.perf_counter() - start
        if raw.shape != (POSE_DIM,) or not np.all(np.isfinite(raw)):
            raise RuntimeError(f"the planner returned a non-finite or mis-shaped action {raw}: stop the robot")
        action = clip_action(raw, state, self.settings)
        self._steps += 1
        planner_info = getattr(self.planner, "last_info", None) or {}
        self.last_info = {
            "subgoal": self._stage, "steps": self._steps, "seconds": self.last_seconds, "raw_action": raw,
            "clipped": not np.allclose(action, raw), "energy": float(planner_info.get("best_energy", math.nan)),
        }  # fmt: skip
        return action
