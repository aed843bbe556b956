"""Cross-entropy method (CEM) over action sequences ``[H, D]``, as V-JEPA 2-AC plans (arXiv 2506.09985).

Actions are 7-D end-effector deltas ``[dx, dy, dz, droll, dpitch, dyaw, dgripper]``. Two Franka variants:

- ``"paper"`` (App. B.2, Table 3): Gaussian samples whose xyz part is *projected* onto the L1 ball of radius
  ``radius`` (Euclidean projection, Duchi et al. 2008), rotation fixed at 0 unless ``rotation``, gripper delta
  clipped to [-1, 1]; refit mean/std on the top-k (optional momentum). 800 samples x 10 iterations, top-10,
  horizon 1, radius 0.075.
- ``"notebook"``: the official notebook's ``cem`` (``notebooks/utils/mpc_utils.py``): xyz clipped per coordinate
  to ``+-maxnorm`` (a box), gripper clipped to ``+-gripper_clip``, rotation 0, momentum blending of mean and std
  with a separate gripper momentum, and the returned gripper rounded to 0 when ``|g| < gripper_round``.

Generic variants for other action spaces (``action_dim`` dims, e.g. 2 for Two-Rooms and Push-T, or ``2 k`` for
``k`` stacked frameskip actions), with the same sampling and refit (and momentum) on every dim:

- ``"box"``: samples clipped to ``[-radius, radius]`` per coordinate;
- ``"l1"`` / ``"l2"``: each group of ``group`` consecutive dims (all dims when None) projected onto the L1 / L2
  ball of radius ``radius``.

Their initial std is ``radius`` (``init_std`` overrides) and their initial mean 0, as DINO-WM's CEM (std 1 in
normalised action units).

All return the final *mean* sequence (what the paper and the notebook execute); ``output="best"`` returns the
lowest-energy sample seen instead. The energy is called once per iteration with all samples,
``energy_fn(actions [S, H, action_dim]) -> [S]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

ACTION_DIM = 7
XYZ, ROT, GRIP = slice(0, 3), slice(3, 6), 6
GENERIC_VARIANTS = ("box", "l1", "l2")
EnergyFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CEMConfig:
    """CEM settings (defaults: the paper's planner).

    Attributes:
        samples: candidate sequences per iteration.
        iterations: refinement iterations (one batched energy call each).
        topk: elites kept per iteration (lowest energies).
        horizon: actions per sequence.
        radius: paper variant: L1-ball radius of each action's xyz delta.
        rotation: paper variant: also optimise the rotation deltas (clipped to ``+-rotation_max``); else fixed at 0.
        gripper: optimise the gripper delta; else fixed at 0.
        momentum_mean: ``mean_new = (1 - m) * mean_topk + m * mean_old`` (xyz and rotation).
        momentum_std: the same blending for the std.
        momentum_mean_gripper: gripper momentum for the mean; None uses ``momentum_mean``.
        momentum_std_gripper: gripper momentum for the std; None uses ``momentum_std``.
        variant: ``"paper"`` (L1-ball projection), ``"notebook"`` (official notebook semantics), or a generic
            variant for any ``action_dim``: ``"box"``, ``"l1"`` or ``"l2"`` (see the module docstring).
        maxnorm: notebook variant: per-coordinate xyz clip.
        gripper_clip: notebook variant: gripper samples clipped to ``+-gripper_clip``.
        gripper_round: notebook variant: returned gripper set to 0 when ``|g| < gripper_round``.
        init_std: initial xyz (and rotation) std; None gives ``radius / 2`` (paper) or ``maxnorm`` (notebook).
        init_std_gripper: initial gripper std (1 in the notebook).
        rotation_max: per-coordinate bound of the rotation deltas when ``rotation``.
        close_gripper: if set, the gripper delta is forced to 1 from this horizon step on (notebook option).
        output: return the final ``"mean"`` sequence or the ``"best"`` sample seen.
        seed: seed of the sampling generator when ``plan`` gets none.
        action_dim: action dims; 7 for the Franka variants, any for the generic ones.
        group: generic ``"l1"``/``"l2"``: the ball constrains each group of this many consecutive dims (None: all).
    """

    samples: int = 800
    iterations: int = 10
    topk: int = 10
    horizon: int = 1
    radius: float = 0.075
    rotation: bool = False
    gripper: bool = True
    momentum_mean: float = 0.0
    momentum_std: float = 0.0
    momentum_mean_gripper: float | None = None
    momentum_std_gripper: float | None = None
    variant: Literal["paper", "notebook", "box", "l1", "l2"] = "paper"
    maxnorm: float = 0.05
    gripper_clip: float = 0.75
    gripper_round: float = 0.25
    init_std: float | None = None
    init_std_gripper: float = 1.0
    rotation_max: float = 0.1
    close_gripper: int | None = None
    output: Literal["mean", "best"] = "mean"
    seed: int | None = 0
    action_dim: int = ACTION_DIM
    group: int | None = None

    def __post_init__(self) -> None:
        if self.variant not in ("paper", "notebook", *GENERIC_VARIANTS):
            raise ValueError(f"variant must be one of {['paper', 'notebook', *GENERIC_VARIANTS]}, got {self.variant!r}")
        if not self.generic and self.action_dim != ACTION_DIM:
            raise ValueError(f"the {self.variant!r} variant plans 7-D Franka actions; use 'box', 'l1' or 'l2'")
        if self.action_dim < 1 or (self.group is not None and (self.group < 1 or self.action_dim % self.group)):
            raise ValueError(f"need action_dim >= 1 and a group that divides it, got {self.action_dim}, {self.group}")
        if self.output not in ("mean", "best"):
            raise ValueError(f"output must be 'mean' or 'best', got {self.output!r}")
        if not 1 <= self.topk <= self.samples:
            raise ValueError(f"need 1 <= topk <= samples, got topk={self.topk}, samples={self.samples}")
        if self.iterations < 1 or self.horizon < 1:
            raise ValueError(f"iterations and horizon must be >= 1, got {self.iterations} and {self.horizon}")
        if self.close_gripper is not None and self.close_gripper < 0:
            raise ValueError(f"close_gripper is a horizon step >= 0, got {self.close_gripper}")
        if min(self.radius, self.maxnorm, self.gripper_clip, self.rotation_max) <= 0:
            raise ValueError("radius, maxnorm, gripper_clip and rotation_max must be > 0")
        if self.variant == "notebook" and self.rotation:
            raise ValueError("the notebook variant fixes the rotation deltas at 0: use rotation=False")
        for name in ("momentum_mean", "momentum_std", "momentum_mean_gripper", "momentum_std_gripper"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    @property
    def generic(self) -> bool:
        """A generic (any ``action_dim``) variant rather than the Franka ones."""
        return self.variant in GENERIC_VARIANTS

    @property
    def xyz_std(self) -> float:
        if self.init_std is not None:
            return self.init_std
        if self.generic:
            return self.radius
        return self.radius / 2 if self.variant == "paper" else self.maxnorm


# The paper's planner (App. B.2, Table 3).
CEM_PAPER = CEMConfig()
# The official notebook's ``WorldModel`` defaults (gripper momentum from the ``cem`` signature).
CEM_NOTEBOOK = CEMConfig(
    samples=400,
    iterations=10,
    topk=10,
    horizon=2,
    momentum_mean=0.15,
    momentum_std=0.15,
    momentum_mean_gripper=0.15,
    momentum_std_gripper=0.15,
    variant="notebook",
    maxnorm=0.05,
)
# Seconds on a CPU: for tests and smoke runs.
CEM_TINY = CEMConfig(samples=32, iterations=3, topk=4)
# The paper's planner scaled to a CPU (1/16 of its rollouts): 128 samples x 4 iterations, top-10, horizon 1.
CEM_CPU = CEMConfig(samples=128, iterations=4, topk=10)


def project_l1_ball(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of each row onto the L1 ball ``{y : ||y||_1 <= radius}`` (Duchi et al. 2008).

    Sort-based and vectorised: rows inside the ball are unchanged, the others are soft-thresholded by the
    ``theta`` that puts them on the surface.

    Args:
        x: ``[..., d]``.
        radius: ball radius (> 0).

    Returns:
        ``[..., d]``, the closest point of the ball to each row.
    """
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    mag = x.abs()
    u = mag.sort(dim=-1, descending=True).values  # [..., d]
    excess = u.cumsum(-1) - radius  # cumsum_j - r
    j = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
    rho = (u * j > excess).sum(-1, keepdim=True)  # number of active coordinates, >= 1
    theta = (excess.gather(-1, rho - 1) / rho.to(x.dtype)).clamp_min(0)  # [..., 1]
    projected = x.sign() * (mag - theta).clamp_min(0)
    inside = mag.sum(-1, keepdim=True) <= radius
    return torch.where(inside, x, projected)


def _blend(new: torch.Tensor, old: torch.Tensor, cfg: CEMConfig, std: bool) -> torch.Tensor:
    """Momentum blend ``(1 - m) * new + m * old`` with the gripper's own momentum (Franka variants); ``[H, D]``."""
    m = cfg.momentum_std if std else cfg.momentum_mean
    mg = cfg.momentum_std_gripper if std else cfg.momentum_mean_gripper
    mom = torch.full((cfg.action_dim,), m, dtype=new.dtype)
    if not cfg.generic:
        mom[GRIP] = m if mg is None else mg
    return (1 - mom) * new + mom * old


def _initial(cfg: CEMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial mean (zeros) and std ``[H, D]``; dims that are not optimised get std 0."""
    if cfg.generic:
        return torch.zeros(cfg.horizon, cfg.action_dim), torch.full((cfg.horizon, cfg.action_dim), cfg.xyz_std)
    std = torch.zeros(cfg.horizon, ACTION_DIM)
    std[:, XYZ] = cfg.xyz_std
    if cfg.rotation:
        std[:, ROT] = cfg.xyz_std
    if cfg.gripper:
        std[:, GRIP] = cfg.init_std_gripper
    return torch.zeros(cfg.horizon, ACTION_DIM), std


def project_l2_ball(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Each row of ``x [..., d]`` scaled onto the L2 ball of ``radius`` when outside it (the Euclidean projection)."""
    norm = x.norm(dim=-1, keepdim=True)
    return x * (radius / norm.clamp_min(1e-12)).clamp(max=1.0)


def _constrain_generic(actions: torch.Tensor, cfg: CEMConfig) -> torch.Tensor:
    """The generic variants: a box, or each group of dims projected onto an L1 / L2 ball."""
    if cfg.variant == "box":
        return actions.clamp(-cfg.radius, cfg.radius)
    group = cfg.group or cfg.action_dim
    grouped = actions.unflatten(-1, (cfg.action_dim // group, group))
    project = project_l1_ball if cfg.variant == "l1" else project_l2_ball
    return project(grouped, cfg.radius).flatten(-2)


def constrain(actions: torch.Tensor, cfg: CEMConfig) -> torch.Tensor:
    """Map raw samples ``[S, H, D]`` into the feasible set of ``cfg.variant`` (see the module docstring)."""
    if cfg.generic:
        return _constrain_generic(actions, cfg)
    out = actions.clone()
    if cfg.variant == "paper":
        out[..., XYZ] = project_l1_ball(actions[..., XYZ], cfg.radius)
        out[..., ROT] = actions[..., ROT].clamp(-cfg.rotation_max, cfg.rotation_max) if cfg.rotation else 0.0
        out[..., GRIP] = actions[..., GRIP].clamp(-1.0, 1.0)
    else:
        out[..., XYZ] = actions[..., XYZ].clamp(-cfg.maxnorm, cfg.maxnorm)
        out[..., ROT] = 0.0
        out[..., GRIP] = actions[..., GRIP].clamp(-cfg.gripper_clip, cfg.gripper_clip)
    if not cfg.gripper:
        out[..., GRIP] = 0.0
    if cfg.close_gripper is not None:
        out[..., cfg.close_gripper :, GRIP] = 1.0
    return out


def _finalize(mean: torch.Tensor, cfg: CEMConfig) -> torch.Tensor:
    """The returned mean plan ``[H, 7]``: notebook rounding of small gripper deltas."""
    out = mean.clone()
    if cfg.variant == "notebook":
        out[..., ROT] = 0.0
        g = out[..., GRIP]
        out[..., GRIP] = torch.where(g.abs() < cfg.gripper_round, torch.zeros_like(g), g)
    return out


def plan(
    energy_fn: EnergyFn, cfg: CEMConfig = CEM_PAPER, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Minimise ``energy_fn`` over action sequences with CEM.

    Args:
        energy_fn: ``actions [S, H, D] -> energies [S]`` (lower is better; ``D = cfg.action_dim``), called once
            per iteration.
        cfg: CEM settings.
        generator: CPU generator for the samples; None seeds a new one with ``cfg.seed`` (or uses the global RNG
            when ``cfg.seed`` is None).

    Returns:
        The plan ``[H, D]`` (the final mean, or the best sample with ``output="best"``) and an info dict:
        ``energies [iterations, S]``, ``elite_energy [iterations]`` (mean of the top-k), ``best`` ``[H, D]`` and
        ``best_energy`` (lowest energy seen), ``mean`` and ``std`` ``[H, D]`` (final distribution).
    """
    if generator is None and cfg.seed is not None:
        generator = torch.Generator().manual_seed(cfg.seed)
    mean, std = _initial(cfg)
    energies, elite_energy = [], []
    best, best_energy = mean.clone(), float("inf")
    for _ in range(cfg.iterations):
        noise = torch.randn(cfg.samples, cfg.horizon, cfg.action_dim, generator=generator)
        actions = constrain(mean + std * noise, cfg)  # [S, H, D]
        energy = energy_fn(actions).detach().float().cpu().reshape(-1)
        if energy.numel() != cfg.samples:
            raise ValueError(f"energy_fn returned {energy.numel()} energies for {cfg.samples} samples")
        idx = energy.topk(cfg.topk, largest=False).indices
        elites = actions[idx]  # [k, H, D]
        if energy[idx[0]] < best_energy:
            best, best_energy = elites[0].clone(), float(energy[idx[0]])
        mean = _blend(elites.mean(0), mean, cfg, std=False)
        std = _blend(elites.std(0, correction=1 if cfg.topk > 1 else 0), std, cfg, std=True)
        energies.append(energy)
        elite_energy.append(energy[idx].mean())
    info = {
        "energies": torch.stack(energies),
        "elite_energy": torch.stack(elite_energy),
        "best": best,
        "best_energy": best_energy,
        "mean": mean,
        "std": std,
    }
    return (best if cfg.output == "best" else _finalize(mean, cfg)), info


CEM_PRESETS: dict[str, CEMConfig] = {"paper": CEM_PAPER, "notebook": CEM_NOTEBOOK, "cpu": CEM_CPU, "tiny": CEM_TINY}


def cem_config(preset: str, **overrides: Any) -> CEMConfig:
    """The CEM preset ``preset`` with the overrides that are not None (e.g. ``samples=64``)."""
    if preset not in CEM_PRESETS:
        raise ValueError(f"unknown CEM preset {preset!r}; choose from {sorted(CEM_PRESETS)}")
    return replace(CEM_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
