"""Weights that ship inside the package: models this project trained with its own code.

Each packaged model is one bf16 safetensors file in ``vjepa2/pretrained/`` holding ``encoder.*`` and
``predictor.*``, with JSON metadata: the training run (steps, data, commands) and the config of the run. Its model
card is ``docs/<name>.md``. Two kinds:

- encoders (:data:`PACKAGED`): the EMA target encoder of a ``vjepa2 pretrain`` run and its pretraining predictor,
  loaded by preset name (``load_encoder("vjepa2_tiny", pretrained=True)``); :func:`package_weights` writes them;
- world models (:data:`PACKAGED_WORLD_MODELS`): the frozen encoder and the AC predictor of a ``vjepa2 train-ac``
  run, with both configs in the metadata (``load_world_model("vjepa2_ac_tiny_reach")``);
  :func:`package_world_model` writes them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from vjepa2.outputs import follow_umask
from vjepa2.weights.checks import WeightsError, WeightsNotFoundError

PACKAGED: dict[str, str] = {"vjepa2_tiny": "vjepa2_tiny.safetensors"}  # preset name -> file in vjepa2/pretrained
PACKAGED_WORLD_MODELS: dict[str, str] = {  # name -> file in vjepa2/pretrained
    "vjepa2_ac_tiny_reach": "vjepa2_ac_tiny_reach.safetensors",  # Franka reach (docs/vjepa2-ac-tiny-reach.md)
    # Franka reach-with-object, planned with the gripper held closed (docs/vjepa2-ac-tiny-reach-with-object.md)
    "vjepa2_ac_tiny_reach_with_object": "vjepa2_ac_tiny_reach_with_object.safetensors",
    "vjepa2_ac_tiny_wall": "vjepa2_ac_tiny_wall.safetensors",  # Two-Rooms / Wall (docs/vjepa2-ac-tiny-wall.md)
    "vjepa2_ac_tiny_pusht": "vjepa2_ac_tiny_pusht.safetensors",  # Push-T (docs/vjepa2-ac-tiny-pusht.md)
}
PARTS = ("encoder", "predictor")


def packaged_path(name: str) -> Path:
    """The packaged weights file of the encoder preset or world model ``name``.

    Raises:
        WeightsNotFoundError: ``name`` has no packaged weights, or its file is missing from this installation.
    """
    files = PACKAGED | PACKAGED_WORLD_MODELS
    if name not in files:
        raise WeightsNotFoundError(f"no weights ship with the package for {name!r}; packaged: {sorted(files)}")
    path = Path(str(resources.files("vjepa2") / "pretrained" / files[name]))
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: the packaged weights of {name!r} are missing from this installation")
    return path


def read_packaged(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """``({part: state dict}, metadata)`` of a packaged weights file; errors name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("vjepa2", "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: not a readable packaged weights file ({err})") from err
    parts: dict[str, dict[str, torch.Tensor]] = {p: {} for p in PARTS}
    for key, value in tensors.items():
        part, _, name = key.partition(".")
        if part not in parts:
            raise WeightsError(f"{path}: unexpected key {key!r} (expected encoder.* and predictor.*)")
        parts[part][name] = value
    return parts, meta


def package_weights(checkpoint: str | Path, out: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the target encoder and predictor of a ``vjepa2 pretrain`` checkpoint, or the encoder and AC predictor
    of a ``vjepa2 train-ac`` checkpoint (a world model, with both configs), as a bf16 safetensors file.

    Refuses to overwrite ``out``; the checkpoint's step and config go into the metadata.
    """
    from safetensors.torch import save_file

    from vjepa2.weights.files import load_checkpoint

    out = Path(out)
    if out.exists():
        raise WeightsError(f"{out} exists; remove it first (packaged weights are never overwritten in place)")
    ckpt = load_checkpoint(checkpoint)
    if "predictor_config" in ckpt:  # train-ac: the frozen encoder + the AC predictor
        parts = {"encoder": "encoder", "predictor": "predictor"}
        extra = {"kind": "world_model", **{k: ckpt.get(k) for k in ("encoder_config", "predictor_config")}}
    else:
        parts, extra = {"encoder": "target_encoder", "predictor": "predictor"}, {"kind": "encoder"}
    missing = [k for k in parts.values() if k not in ckpt]
    if missing:
        raise WeightsError(f"{checkpoint}: not a vjepa2 pretrain or train-ac checkpoint (no {missing})")
    tensors = {f"{part}.{k}": v for part, key in parts.items() for k, v in ckpt[key].items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsError(f"{checkpoint}: non-finite weights in {bad[:3]}")
    tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    meta = {"step": int(ckpt["step"]), "config": ckpt.get("config"), **extra, **(metadata or {})}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={"vjepa2": json.dumps(meta)})
    follow_umask(out)
    return out
