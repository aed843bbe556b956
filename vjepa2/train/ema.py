"""Exponential moving average of the context encoder into the target encoder."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``theta_target <- m * theta_target + (1 - m) * theta_online`` over all parameters, with foreach ops.

    Under FSDP2 both modules are sharded alike (per parameter, along dim 0), so the update is shard-wise; a root
    module left unsharded after a no-grad forward is resharded first.
    """
    for module in (target, online):
        if hasattr(module, "reshard"):
            module.reshard()
    t_params = [p for p in target.parameters()]
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError(f"EMA between modules with {len(t_params)} and {len(o_params)} parameters")
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)
