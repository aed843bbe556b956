"""Load a V-JEPA 2-AC world model (frozen encoder + AC predictor) from one checkpoint file.

Three kinds of source are understood:

- the name of a world model that ships with the package (``vjepa2_ac_tiny_reach``,
  :data:`vjepa2.weights.packaged.PACKAGED_WORLD_MODELS`) or a ``.safetensors`` file of the same kind (written by
  ``vjepa2 package-weights`` from a train-ac checkpoint): bf16, with both configs in its metadata;
- a ``vjepa2 train-ac`` checkpoint (``latest.pt``): its ``encoder_config`` / ``predictor_config`` entries rebuild
  the models, and the ``encoder`` / ``predictor`` entries fill them;
- the official ``vjepa2-ac-vitg.pt``: it stores no configs, so presets are passed, e.g.
  ``load_world_model("vjepa2-ac-vitg.pt", encoder="vit_giant", predictor="ac_vit_giant")``.

Either way the weights go through the strict loaders of :mod:`vjepa2.weights`, so a preset that does not fit the
file raises a :class:`~vjepa2.weights.WeightsError` naming the file and every mismatched key.

A predictor of 7-D Franka poses and actions plans with the official pose update; one trained on another env's states
and (frame-stacked) actions needs that env's state update as ``pose_fn`` (e.g.
:func:`vjepa2.plan.protocol.chunk_pose_fn`, as ``vjepa2 eval-plan`` sets it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa2.config import ACPredictorConfig, EncoderConfig
from vjepa2.config_io import from_dict
from vjepa2.data.poses import compute_new_pose
from vjepa2.data.trajectories import POSE_DIM
from vjepa2.devices import pick_device
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.models.encode import DTYPES
from vjepa2.plan.mpc import Preprocess
from vjepa2.plan.world_model import PoseFn, WorldModel
from vjepa2.weights import WeightsError, WeightsNotFoundError, load_ac_predictor, load_encoder, read_checkpoint
from vjepa2.weights.checks import load_checked
from vjepa2.weights.packaged import PACKAGED_WORLD_MODELS, packaged_path, read_packaged


@dataclass(frozen=True)
class CheckpointInfo:
    """What a world-model file says about itself (all None for the official checkpoint).

    Attributes:
        encoder: the stored encoder config.
        predictor: the stored AC predictor config.
        train: the ``train-ac`` run config as a nested dict (``data.transform``, ``data.resolution``, ...).
        step: the training step of the checkpoint.
    """

    encoder: EncoderConfig | None = None
    predictor: ACPredictorConfig | None = None
    train: dict[str, Any] | None = None
    step: int | None = None

    @property
    def transform(self) -> str | None:
        """The frame transform the predictor was trained with (``resize``, ``droid``, ...), if recorded."""
        return self._data.get("transform")

    @property
    def frame_step(self) -> int | None:
        """Env steps between the training clips' frames when fixed (``data.frame_step``), if recorded."""
        return self._data.get("frame_step")

    @property
    def poses(self) -> bool | None:
        """Whether the predictor takes 7-D Franka poses and pose actions (None when no config is stored)."""
        return None if self.predictor is None else predicts_poses(self.predictor)

    @property
    def _data(self) -> dict[str, Any]:
        return (self.train or {}).get("data") or {}


def predicts_poses(cfg: ACPredictorConfig) -> bool:
    """A predictor of 7-D poses and actions (Franka, DROID), whose states follow the official pose update."""
    return cfg.action_dim == POSE_DIM and cfg.state_dim == POSE_DIM


def _no_pose_fn(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    raise ValueError(
        f"this world model takes {state.shape[-1]}-D states and {action.shape[-1]}-D actions, not Franka poses: set "
        "its pose_fn to the env's state update (vjepa2.plan.protocol.chunk_pose_fn) before multi-step rollouts"
    )


def default_pose_fn(cfg: ACPredictorConfig) -> PoseFn:
    """The official pose update for pose predictors; for others a function raising that names what to set."""
    return compute_new_pose if predicts_poses(cfg) else _no_pose_fn


def _config(cls: type, data: Any, entry: str, path: Path) -> Any:
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as err:
        raise WeightsError(f"{path}: entry {entry!r} is not a valid {cls.__name__}: {err}") from err


def _packaged(name: str | Path) -> tuple[dict[str, Any], Path] | None:
    """``({"encoder": sd, "predictor": sd, **metadata}, file)`` of a packaged world model (by name, or a
    ``.safetensors`` file written by ``vjepa2 package-weights``), None for other sources."""
    if str(name) in PACKAGED_WORLD_MODELS:
        path = packaged_path(str(name))
    elif str(name).endswith(".safetensors"):
        path = Path(name)
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: no such world-model file")
    else:
        return None
    parts, meta = read_packaged(path)
    if meta.get("kind") != "world_model":
        raise WeightsError(f"{path}: not a packaged world model (its metadata says kind={meta.get('kind')!r})")
    return {**meta, **parts}, path


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The configs, run config and step stored in a world-model file or packaged world model (without building
    the models).

    Raises:
        WeightsNotFoundError: ``path`` does not exist.
        WeightsError: the file is not a checkpoint that loads safely.
    """
    packaged = _packaged(path)
    return _info(*packaged) if packaged else _info(read_checkpoint(path), Path(path))


def _info(ckpt: dict[str, Any], path: Path) -> CheckpointInfo:
    """:class:`CheckpointInfo` of a loaded checkpoint or packaged world model (``path`` names it in errors)."""
    enc, pred = ckpt.get("encoder_config"), ckpt.get("predictor_config")
    step = ckpt.get("step")
    return CheckpointInfo(
        encoder=None if enc is None else _config(EncoderConfig, enc, "encoder_config", path),
        predictor=None if pred is None else _config(ACPredictorConfig, pred, "predictor_config", path),
        train=ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None,
        step=int(step) if isinstance(step, (int, torch.Tensor)) else None,
    )


def load_world_model(
    path: str | Path,
    dtype: str = "bf16",
    device: str | torch.device = "cpu",
    encoder: str | EncoderConfig | None = None,
    predictor: str | ACPredictorConfig | None = None,
) -> WorldModel:
    """A :class:`WorldModel` from a ``train-ac`` checkpoint or the official V-JEPA 2-AC file.

    Args:
        path: the checkpoint file, or the name of a packaged world model (``"vjepa2_ac_tiny_reach"``).
        dtype: autocast dtype of the world model, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a :class:`torch.device`.
        encoder: encoder preset name or config; None uses the file's ``encoder_config`` (required for files
            without one, e.g. ``"vit_giant"`` for ``vjepa2-ac-vitg.pt``).
        predictor: AC predictor preset name or config; None uses the file's ``predictor_config`` (e.g.
            ``"ac_vit_giant"`` for the official file).

    Returns:
        The world model in eval mode on ``device``; the encoder maps frames at the predictor's ``img_size`` to
        ``[B, T, HW, D]`` features. Its ``pose_fn`` is :func:`default_pose_fn` of the predictor.

    Raises:
        WeightsNotFoundError: ``path`` does not exist.
        WeightsError: the file has no config and no preset was given, or the weights do not fit (strict load).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    packaged = _packaged(path)  # read once: its metadata gives the info, its tensors the weights
    info = _info(*packaged) if packaged else read_checkpoint_info(path)
    path = Path(path)
    enc_cfg = encoder if encoder is not None else info.encoder
    pred_cfg = predictor if predictor is not None else info.predictor
    if enc_cfg is None or pred_cfg is None:
        missing = " and ".join(n for n, c in (("encoder", enc_cfg), ("predictor", pred_cfg)) if c is None)
        raise WeightsError(
            f"{path} stores no {missing} config (not a `vjepa2 train-ac` checkpoint): pass presets, e.g. "
            "encoder='vit_giant', predictor='ac_vit_giant' for the official vjepa2-ac-vitg.pt"
        )
    if packaged:
        parts, file = packaged
        source = f"packaged world model {file}"
        enc = load_checked(VisionTransformer(info.encoder), parts["encoder"], what="encoder", source=source)
        pred = load_checked(ACPredictor(info.predictor), parts["predictor"], what="AC predictor", source=source)
    else:
        key = "encoder" if info.encoder is not None else "target_encoder"  # train-ac saves only `encoder`
        enc = load_encoder(enc_cfg, path, key=key)
        pred = load_ac_predictor(pred_cfg, path)
    if enc.cfg.embed_dim != pred.cfg.embed_dim:
        raise WeightsError(
            f"{path}: the encoder is {enc.cfg.embed_dim} wide but the AC predictor expects {pred.cfg.embed_dim}"
        )
    dev = pick_device(device)
    enc, pred = enc.requires_grad_(False).to(dev), pred.requires_grad_(False).to(dev)
    return WorldModel(enc, pred, dtype=dtype, pose_fn=default_pose_fn(pred.cfg))


def frame_preprocess(transform: str, resolution: int) -> Preprocess:
    """uint8 ``[H, W, 3]`` -> normalised ``[3, resolution, resolution]`` with a training transform's name."""
    from vjepa2.data.transforms import make_clip_transform

    clip_fn = make_clip_transform(transform, resolution)
    rng = np.random.default_rng(0)  # the named transforms are deterministic

    def fn(image: np.ndarray) -> torch.Tensor:
        return clip_fn(torch.from_numpy(np.ascontiguousarray(image))[None], rng)[:, 0]

    return fn


def pick_transform(name: str, info: CheckpointInfo) -> str:
    """``auto``: the transform the checkpoint was trained with, else ``resize`` (square simulator frames)."""
    return (info.transform or "resize") if name == "auto" else name
