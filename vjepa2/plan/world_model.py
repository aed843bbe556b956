"""V-JEPA 2-AC as a world model for planning (official ``notebooks/utils/world_model_wrapper.py``).

- ``encode``: every frame is encoded on its own as a duplicated 2-frame tubelet, then ``F.layer_norm`` over D.
- ``predict_next``: the AC predictor on the whole (flattened) history; the last step's tokens, layer-normed.
- ``rollout``: autoregressive prediction for a batch of candidate action sequences; poses are integrated with
  :func:`vjepa2.data.poses.compute_new_pose` and each layer-normed prediction joins the history.
- ``energy``: mean L1 distance over tokens and dims to the goal features.

Everything runs under ``torch.inference_mode`` and autocast (bf16 by default, also on CPU); features come back
in float32.

``rollout`` and ``energy_fn`` take the fast path of :class:`~vjepa2.plan.cached_rollout.CachedRollout` when all
candidates share one context (as in CEM): shared context steps and the first layer of the first step computed once,
a KV cache over the horizon, candidates in chunks. ``WorldModel(..., cached=False)`` (or :meth:`rollout_reference`)
is the straightforward rollout above, kept as the reference; the two agree up to low-precision rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from vjepa2.data.poses import compute_new_pose
from vjepa2.devices import intra_op_threads
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.models.encode import DTYPES, encode_frames, layer_norm
from vjepa2.plan.cached_rollout import CachedRollout
from vjepa2.plan.energy import l1_energy

PoseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Up to this many 64 x 64 images (or the same pixels at other sizes) :meth:`WorldModel.encode` uses one CPU thread.
SMALL_ENCODE = 4


class WorldModel:
    """Frozen encoder + AC predictor with the planning operations.

    Args:
        encoder: the (target) video encoder.
        ac_predictor: the action-conditioned predictor, built for the encoder's width and the frames' resolution.
        dtype: autocast dtype, ``"bf16"``, ``"fp16"`` or ``"fp32"`` (no autocast).
        pose_fn: ``(state [..., 7], action [..., 7]) -> next state [..., 7]``; the official pose update by default.
        cached: roll candidates that share a context out with :class:`CachedRollout`; False always uses
            :meth:`rollout_reference`.
        chunk: candidates per chunk of the cached rollout (None: a few MiB of activations on CPU, all on GPUs).
        share_first_layer: the cached rollout's shared-first-layer shortcut (see :mod:`vjepa2.plan.cached_rollout`).
        fold_rope: the cached rollout folds RoPE into per-position q/k weights (idem).
        workers: threads of the cached rollout on CPU (None: ``torch.get_num_threads()``).
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        ac_predictor: ACPredictor,
        dtype: str = "bf16",
        pose_fn: PoseFn = compute_new_pose,
        cached: bool = True,
        chunk: int | None = None,
        share_first_layer: bool = True,
        fold_rope: bool = True,
        workers: int | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.encoder = encoder.eval()
        self.predictor = ac_predictor.eval()
        self.dtype = dtype
        self.pose_fn = pose_fn
        self.cached = cached
        self.chunk = chunk
        self.share_first_layer = share_first_layer
        self.fold_rope = fold_rope
        self.workers = workers

    @property
    def device(self) -> torch.device:
        return next(self.predictor.parameters()).device

    @property
    def tokens_per_frame(self) -> int:
        return self.predictor.cfg.grid**2

    def autocast(self) -> AbstractContextManager:
        """The autocast context of ``dtype`` on the model's device."""
        dtype = DTYPES[self.dtype]
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """:func:`encode_frames` at the predictor's resolution: ``[B, 3, (T,) H, W]`` -> ``[B, T, HW, D]``.

        A few frames (an observation or a goal, at most :data:`SMALL_ENCODE` images) are encoded on one intra-op
        CPU thread: too little work to split (see :func:`~vjepa2.devices.intra_op_threads`).
        """
        size = self.predictor.cfg.img_size
        if frames.shape[-2:] != (size, size):
            raise ValueError(f"frames are {tuple(frames.shape[-2:])} but the AC predictor expects {size}x{size}")
        images = frames.shape[0] * (frames.shape[2] if frames.ndim == 5 else 1)
        small = self.device.type == "cpu" and images * size * size <= SMALL_ENCODE * 64 * 64
        with intra_op_threads(1) if small else contextlib.nullcontext():
            return encode_frames(self.encoder, frames.to(self.device), self.dtype)

    @torch.inference_mode()
    def predict_next(self, history: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """One step of the predictor (official ``step_predictor``).

        Args:
            history: frame features ``[S, T, HW, D]``.
            actions: ``[S, T, 7]``; ``actions[:, t]`` is taken after frame ``t``.
            states: ``[S, T, 7]``, the pose at each frame.

        Returns:
            Layer-normed features of frame ``T``, ``[S, HW, D]``, float32.
        """
        S, T, hw, D = history.shape
        with self.autocast():
            out = self.predictor(history.flatten(1, 2), actions, states)  # [S, T*HW, D]
        return layer_norm(out[:, -hw:])

    def uses_cache(self, z0: torch.Tensor, s0: torch.Tensor, past_actions: torch.Tensor | None = None) -> bool:
        """Whether :meth:`rollout` takes the :class:`CachedRollout` path for this context: ``cached``, one context
        for all candidates, a predictor in eval mode without extrinsics."""
        shared = z0.shape[0] == 1 and s0.shape[0] == 1 and (past_actions is None or past_actions.shape[0] == 1)
        return self.cached and shared and not self.predictor.training and not self.predictor.cfg.use_extrinsics

    def cached_rollout(
        self, z0: torch.Tensor, s0: torch.Tensor, past_actions: torch.Tensor | None = None
    ) -> CachedRollout:
        """A :class:`CachedRollout` for the context ``z0 [1, T0, HW, D]``, ``s0 [1, T0, 7]`` (and ``past_actions
        [1, T0 - 1, 7]``) with this model's settings."""
        device = self.device
        return CachedRollout(
            self.predictor,
            z0.to(device),
            s0.to(device),
            None if past_actions is None else past_actions.to(device),
            self.pose_fn,
            dtype=DTYPES[self.dtype],
            chunk=self.chunk,
            share_first_layer=self.share_first_layer,
            fold_rope=self.fold_rope,
            workers=self.workers,
        )

    @torch.inference_mode()
    def rollout(
        self,
        z0: torch.Tensor,
        s0: torch.Tensor,
        actions: torch.Tensor,
        past_actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Roll all candidate action sequences out at once and return the last predicted frame.

        Args:
            z0: context features ``[1 or S, T0, HW, D]`` (expanded over the candidates without a copy).
            s0: context poses ``[1 or S, T0, 7]``.
            actions: candidates ``[S, H, 7]``; ``actions[:, 0]`` is taken at the last context frame.
            past_actions: ``[1 or S, T0 - 1, 7]``, the actions between the context frames; needed when ``T0 > 1``.

        Returns:
            Predicted features of frame ``T0 + H - 1``, ``[S, HW, D]``, float32.
        """
        if self.uses_cache(z0, s0, past_actions):
            return self.cached_rollout(z0, s0, past_actions).rollout(actions)
        return self.rollout_reference(z0, s0, actions, past_actions)

    @torch.inference_mode()
    def rollout_reference(
        self,
        z0: torch.Tensor,
        s0: torch.Tensor,
        actions: torch.Tensor,
        past_actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`rollout` the straightforward way: the predictor on the whole history at every step, all
        candidates in one batch (the official loop, batched)."""
        S, H, _ = actions.shape
        T0 = z0.shape[1]
        device = self.device
        actions = actions.to(device, torch.float32)
        if T0 > 1:
            if past_actions is None or past_actions.shape[1] != T0 - 1:
                raise ValueError(f"a context of T0={T0} frames needs past_actions [.., {T0 - 1}, 7]")
            actions = torch.cat([past_actions.to(actions).expand(S, -1, -1), actions], dim=1)
        # Preallocated history buffers; step h reads the first T0 + h frames and poses.
        frames = torch.empty(S, T0 + H - 1, *z0.shape[2:], device=device)
        frames[:, :T0] = z0.to(device)
        states = torch.empty(S, T0 + H - 1, s0.shape[-1], device=device)
        states[:, :T0] = s0.to(device, torch.float32)
        for h in range(H):
            n = T0 + h  # frames known at this step
            pred = self.predict_next(frames[:, :n], actions[:, :n], states[:, :n])
            if h + 1 < H:
                frames[:, n] = pred
                states[:, n] = self.pose_fn(states[:, n - 1], actions[:, n - 1])
        return pred

    @staticmethod
    def energy(pred: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Mean L1 distance over tokens and dims (official ``l1`` on flattened features).

        Args:
            pred: ``[S, HW, D]``.
            goal: ``[HW, D]`` (any leading singleton dims, e.g. ``encode``'s ``[1, 1, HW, D]``).

        Returns:
            ``[S]``.
        """
        return l1_energy(pred, goal)

    def final_pose(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The pose after all candidate actions, integrated with ``pose_fn``: ``s0 [1 or S, T0, P]``, ``actions
        [S, H, A]`` -> ``[S, P]``."""
        state = s0[:, -1].to(torch.float32).expand(actions.shape[0], -1)
        for a in actions.to(torch.float32).unbind(1):
            state = self.pose_fn(state, a)
        return state

    def energy_fn(
        self,
        z0: torch.Tensor,
        s0: torch.Tensor,
        goal: torch.Tensor,
        past_actions: torch.Tensor | None = None,
        goal_pose: torch.Tensor | None = None,
        proprio_weight: float = 0.0,
        visual_weight: float = 1.0,
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``actions [S, H, 7] -> energies [S]`` for CEM: one batched rollout per call (shapes as ``rollout``).

        The official energy is the visual L1 alone. DINO-WM's planning objective adds ``proprio_weight`` x a
        proprioceptive term: the mean L1 between the first ``P`` entries of the final pose (:meth:`final_pose`) and
        ``goal_pose [P]``, scaled by the predictor's ``state_scale``. ``visual_weight=0`` skips the rollout.
        """
        if proprio_weight and goal_pose is None:
            raise ValueError("a proprio_weight needs the goal pose (goal_pose)")
        cache = None
        if visual_weight and self.uses_cache(z0, s0, past_actions):
            cache = self.cached_rollout(z0, s0, past_actions)  # once per plan, shared by every CEM iteration
            goal = goal.to(self.device)

        def visual(actions: torch.Tensor) -> torch.Tensor:
            if cache is None:
                return self.energy(self.rollout(z0, s0, actions, past_actions), goal)
            return cache.energy(actions, goal)

        def fn(actions: torch.Tensor) -> torch.Tensor:
            energy = torch.zeros(actions.shape[0])
            if visual_weight:
                energy += visual_weight * visual(actions).cpu()
            if proprio_weight:
                pose = self.final_pose(s0.cpu(), actions.cpu())[:, : goal_pose.numel()]
                error = (pose - goal_pose.to(pose)).abs().mean(-1) * self.predictor.cfg.state_scale
                energy += proprio_weight * error
            return energy

        return fn
