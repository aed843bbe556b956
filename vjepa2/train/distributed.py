"""torch.distributed plumbing in one place: torchrun environment, loud failures, rank-0 helpers, DDP/FSDP wrap.

Launch with ``torchrun --nproc_per_node=N -m vjepa2 pretrain ...``: gloo on CPU, NCCL on CUDA. When a
distributed run was requested and the process group cannot start, this raises instead of silently falling back to
one process (the official ``init_distributed`` bug).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

from vjepa2.devices import pick_device
from vjepa2.errors import DistributedStartError, UserError


@dataclass(frozen=True)
class DistWorld:
    """Where this process sits: ``rank`` of ``size`` processes, on ``device``."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


INIT_TIMEOUT = 120.0  # seconds to wait for every peer at start (torch's default is 30 minutes)


def _env_int(name: str, default: str | None = None) -> int:
    raw = os.environ.get(name, default)
    if raw is None:
        raise UserError(f"{name} is not set; launch several processes with torchrun")
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"{name}={raw!r} is not an integer") from None


def world_from_env() -> tuple[int, int, int]:
    """``(rank, size, local_rank)`` from the torchrun environment, validated (:class:`UserError` names the variable)."""
    size = _env_int("WORLD_SIZE", "1")
    if size < 1:
        raise UserError(f"WORLD_SIZE={size} must be >= 1")
    if size == 1:
        return 0, 1, 0
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK", "0")
    if not 0 <= rank < size:
        raise UserError(f"RANK={rank} is outside [0, WORLD_SIZE={size})")
    if not 0 <= local_rank <= rank:
        raise UserError(f"LOCAL_RANK={local_rank} must lie in [0, RANK={rank}]")
    return rank, size, local_rank


def init(device: str = "auto", backend: str | None = None, timeout: float | None = None) -> DistWorld:
    """Start the process group when launched by torchrun (``WORLD_SIZE`` > 1); otherwise a 1-process world.

    ``timeout``: seconds to wait for the peers (default ``VJEPA2_INIT_TIMEOUT`` or :data:`INIT_TIMEOUT`).

    Raises:
        UserError: the torchrun variables are missing or inconsistent.
        RuntimeError: the environment asks for several processes but the process group cannot start in time.
    """
    rank, size, local_rank = world_from_env()
    if size <= 1:
        return DistWorld(device=pick_device(device))
    if timeout is None:
        timeout = float(os.environ.get("VJEPA2_INIT_TIMEOUT", INIT_TIMEOUT))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    try:
        if not dist.is_initialized():
            dist.init_process_group(
                backend=backend, rank=rank, world_size=size, timeout=datetime.timedelta(seconds=timeout)
            )
    except Exception as err:
        raise DistributedStartError(
            f"distributed run requested (WORLD_SIZE={size}, RANK={rank}) but the {backend} process group failed "
            f"to start within {timeout:g} s: {err}. Are all {size} processes running? Check MASTER_ADDR/MASTER_PORT "
            "or launch with torchrun (VJEPA2_INIT_TIMEOUT sets the wait)."
        ) from err
    if rank != 0:  # one voice: rank 0 reports progress and warnings, the others only errors
        logging.getLogger("vjepa2").setLevel(logging.ERROR)
    return DistWorld(rank=rank, size=size, local_rank=local_rank, device=dev)


def cleanup(barrier: bool = False) -> None:
    """Tear the process group down; ``barrier`` (after a clean run) first waits for every rank, so that no rank
    leaves while a peer's gloo threads still talk to it (which can abort the peer)."""
    if dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, world: DistWorld) -> torch.Tensor:
    """Mean of ``value`` over processes (identity in a 1-process world)."""
    if not world.distributed:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world.size


def wrap(
    model: nn.Module,
    world: DistWorld,
    strategy: Literal["ddp", "fsdp"] = "ddp",
    find_unused: bool = False,
    static_graph: bool = False,
) -> nn.Module:
    """Wrap a trainable module for data parallelism (no-op in a 1-process world).

    ``find_unused`` is needed under DDP for modules with parameters a step may not use (the predictor's spare mask
    tokens), as in the official code; ``static_graph`` for modules run several times per backward (AC rollout).
    ``fsdp`` uses FSDP2 (``fully_shard``) with one unit per :class:`Block`.
    """
    if not world.distributed:
        return model
    if strategy == "fsdp":  # FSDP2: shard every Block, then the rest; works with gloo on CPU and NCCL on CUDA
        from torch.distributed.fsdp import fully_shard

        from vjepa2.nn import Block

        for module in model.modules():
            if isinstance(module, Block):
                fully_shard(module)
        return fully_shard(model)
    ids = [world.device] if world.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused, static_graph=static_graph
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (FSDP2 shards modules in place)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> tuple[dict, dict | None]:
    """Full (unsharded, CPU) model and optimizer state dicts with plain parameter names, under DDP, FSDP or neither.

    A collective under FSDP: every rank must call it.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=dist.is_initialized())
    model_sd = get_model_state_dict(model, options=opts)
    optim_sd = get_optimizer_state_dict(model, optimizer, options=opts) if optimizer is not None else None
    return model_sd, optim_sd


def load_full_state(model: nn.Module, model_sd: dict, optimizer=None, optim_sd: dict | None = None) -> None:
    """Inverse of :func:`full_state` (each rank keeps its shard under FSDP)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    set_model_state_dict(model, model_sd, options=StateDictOptions(full_state_dict=True))
    if optimizer is not None and optim_sd is not None:  # non-strict: parameters never used (spare mask tokens)
        opts = StateDictOptions(full_state_dict=True, strict=False)  # have no optimizer state
        set_optimizer_state_dict(model, optimizer, optim_sd, options=opts)
