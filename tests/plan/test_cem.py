import dataclasses

import pytest
import torch

from vjepa2.plan.cem import CEM_NOTEBOOK, CEM_PAPER, CEMConfig, constrain, plan, project_l1_ball


def l1_ball_by_bisection(x: torch.Tensor, radius: float, iters: int = 200) -> torch.Tensor:
    """Independent reference: soft-threshold with the theta found by bisection on ||soft(x, theta)||_1 = r."""
    lo, hi = torch.zeros(x.shape[0], 1, dtype=x.dtype), x.abs().amax(-1, keepdim=True)
    for _ in range(iters):
        mid = (lo + hi) / 2
        too_big = (x.abs() - mid).clamp_min(0).sum(-1, keepdim=True) > radius
        lo, hi = torch.where(too_big, mid, lo), torch.where(too_big, hi, mid)
    out = x.sign() * (x.abs() - hi).clamp_min(0)
    return torch.where(x.abs().sum(-1, keepdim=True) <= radius, x, out)


def test_l1_projection_inside_unchanged_outside_on_surface():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g, dtype=torch.float64) * 0.1
    p = project_l1_ball(x, 0.075)
    inside = x.abs().sum(-1) <= 0.075
    assert 0 < inside.sum() < len(x)
    torch.testing.assert_close(p[inside], x[inside], rtol=0, atol=0)
    torch.testing.assert_close(p[~inside].abs().sum(-1), torch.full(((~inside).sum(),), 0.075, dtype=x.dtype))
    assert (p.sign() * x.sign() >= 0).all()  # never flips a sign


@pytest.mark.parametrize("d", [1, 3, 7])
def test_l1_projection_matches_bisection_and_is_closest(d):
    g = torch.Generator().manual_seed(d)
    x = torch.randn(200, d, generator=g, dtype=torch.float64) * torch.rand(200, 1, generator=g, dtype=torch.float64)
    r = 0.3
    p = project_l1_ball(x, r)
    torch.testing.assert_close(p, l1_ball_by_bisection(x, r), atol=1e-10, rtol=0)
    # Closest point: no random feasible point (interior or surface) is nearer.
    y = torch.randn(2000, d, generator=g, dtype=torch.float64)
    y = y / y.abs().sum(-1, keepdim=True) * r * torch.rand(2000, 1, generator=g, dtype=torch.float64).sqrt()
    dist_p = (x - p).norm(dim=-1)  # [200]
    dist_y = torch.cdist(x, y).amin(-1)  # [200]
    assert (dist_p <= dist_y + 1e-12).all()


def test_l1_projection_batched_shapes_and_ties():
    x = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], [[-2.0, 0.0, 0.0], [0.02, -0.01, 0.0]]])
    p = project_l1_ball(x, 0.3)
    assert p.shape == x.shape
    torch.testing.assert_close(p[0, 0], torch.full((3,), 0.1))
    torch.testing.assert_close(p[1, 0], torch.tensor([-0.3, 0.0, 0.0]))
    torch.testing.assert_close(p[0, 1], x[0, 1])
    torch.testing.assert_close(p[1, 1], x[1, 1])


class Quadratic:
    """Energy ||a - target||^2 summed over the horizon; counts calls and records the samples."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target, self.calls, self.seen = target, 0, []

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.append(actions.clone())
        return ((actions - self.target) ** 2).sum(dim=(-2, -1))


SMALL = dataclasses.replace(CEM_PAPER, samples=200, iterations=8, topk=10)


def test_paper_cem_finds_quadratic_optimum_inside_ball():
    target = torch.tensor([[0.02, -0.03, 0.01, 0.0, 0.0, 0.0, 0.3]])
    energy = Quadratic(target)
    actions, info = plan(energy, SMALL)
    assert actions.shape == (1, 7)
    assert (actions - target).abs().max() < 5e-3
    assert info["energies"].shape == (SMALL.iterations, SMALL.samples)
    assert energy(actions[None])[0] < energy.seen[0].sub(target).pow(2).sum((-2, -1)).mean() / 100
    assert info["elite_energy"][-1] < info["elite_energy"][0]


def test_paper_cem_target_outside_ball_converges_to_its_projection():
    target = torch.tensor([[0.2, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0]])
    actions, _ = plan(Quadratic(target), SMALL)
    expected = project_l1_ball(target[:, :3], 0.075)  # [0.075, 0, 0]
    assert (actions[:, :3] - expected).abs().max() < 5e-3
    assert actions[:, :3].abs().sum() <= 0.075 + 1e-6


def test_paper_samples_are_feasible_and_rotation_fixed():
    energy = Quadratic(torch.zeros(2, 7))
    plan(energy, dataclasses.replace(SMALL, horizon=2, iterations=2))
    samples = torch.cat(energy.seen)  # [2 * S, 2, 7]
    assert (samples[..., :3].abs().sum(-1) <= 0.075 + 1e-6).all()
    assert (samples[..., :3].abs().sum(-1) > 0.075 - 1e-6).any()  # some land on the surface
    assert (samples[..., 3:6] == 0).all()
    assert samples[..., 6].abs().max() <= 1.0


def test_rotation_can_be_optimised():
    target = torch.tensor([[0.01, 0.0, 0.0, 0.05, -0.03, 0.02, 0.0]])
    cfg = dataclasses.replace(SMALL, rotation=True, gripper=False, iterations=10)
    actions, _ = plan(Quadratic(target), cfg)
    assert (actions - target).abs().max() < 5e-3


def test_one_batched_energy_call_per_iteration():
    energy = Quadratic(torch.zeros(3, 7))
    cfg = dataclasses.replace(SMALL, horizon=3, iterations=5, samples=64)
    plan(energy, cfg)
    assert energy.calls == 5
    assert all(s.shape == (64, 3, 7) for s in energy.seen)


def test_determinism_given_seed():
    target = torch.tensor([[0.01, 0.02, -0.01, 0.0, 0.0, 0.0, 0.1]])
    a, _ = plan(Quadratic(target), dataclasses.replace(SMALL, seed=3))
    b, _ = plan(Quadratic(target), dataclasses.replace(SMALL, seed=3))
    c, _ = plan(Quadratic(target), SMALL, generator=torch.Generator().manual_seed(3))
    d, _ = plan(Quadratic(target), dataclasses.replace(SMALL, seed=4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    assert not torch.equal(a, d)


def test_notebook_variant_clips_blends_and_rounds():
    cfg = dataclasses.replace(CEM_NOTEBOOK, samples=200, iterations=10)
    assert (CEM_NOTEBOOK.samples, CEM_NOTEBOOK.horizon, CEM_NOTEBOOK.momentum_mean) == (400, 2, 0.15)
    target = torch.tensor([[0.2, -0.01, 0.0, 0.3, 0.3, 0.3, 0.1]] * 2)  # x beyond the box, small gripper
    energy = Quadratic(target)
    actions, info = plan(energy, cfg)
    samples = torch.cat(energy.seen)
    assert samples[..., :3].abs().max() <= 0.05 + 1e-7  # per-coordinate box, not a ball
    assert (samples[..., :3].abs().sum(-1) > 0.075).any()
    assert samples[..., 6].abs().max() <= 0.75 + 1e-7
    assert (samples[..., 3:6] == 0).all()
    assert actions.shape == (2, 7)
    assert (actions[:, 0] - 0.05).abs().max() < 5e-3  # pushed against the box
    assert (actions[:, 1] + 0.01).abs().max() < 5e-3
    assert (actions[:, 6] == 0).all()  # |g| ~ 0.1 < 0.25 is rounded to 0
    assert info["mean"][:, 6].abs().max() > 0.02  # ... while the distribution's mean is not


def test_notebook_momentum_blends_with_the_old_mean():
    """With one iteration the mean is (1 - m) * elite mean + m * 0 (initial mean): check against a manual refit."""
    cfg = dataclasses.replace(CEM_NOTEBOOK, samples=50, iterations=1, momentum_mean=0.4, momentum_mean_gripper=0.2)
    energy = Quadratic(torch.tensor([[0.01, 0.02, 0.0, 0.0, 0.0, 0.0, 0.5]] * 2))
    _, info = plan(energy, cfg)
    samples = energy.seen[0]
    elites = samples[energy(samples).topk(cfg.topk, largest=False).indices].mean(0)
    expected = elites.clone()
    expected[:, :6] *= 0.6
    expected[:, 6] *= 0.8
    torch.testing.assert_close(info["mean"], expected)


def test_constrain_close_gripper_and_disabled_gripper():
    raw = torch.randn(10, 3, 7)
    closed = constrain(raw, dataclasses.replace(CEM_PAPER, horizon=3, close_gripper=1))
    assert (closed[:, 1:, 6] == 1).all() and (closed[:, 0, 6].abs() <= 1).all()
    assert (constrain(raw, dataclasses.replace(CEM_PAPER, gripper=False))[..., 6] == 0).all()


def test_output_best_returns_lowest_energy_sample():
    energy = Quadratic(torch.tensor([[0.03, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]))
    best, info = plan(energy, dataclasses.replace(SMALL, output="best"))
    assert float(energy(best[None])[0]) == pytest.approx(info["best_energy"], rel=1e-5)
    assert info["best_energy"] <= float(info["energies"].min()) + 1e-9


@pytest.mark.parametrize(
    "bad",
    [
        dict(topk=0),
        dict(topk=900),
        dict(variant="x"),
        dict(variant="notebook", rotation=True),
        dict(momentum_std=2),
        dict(radius=0),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        dataclasses.replace(CEM_PAPER, **bad)


def test_presets():
    assert (CEM_PAPER.samples, CEM_PAPER.iterations, CEM_PAPER.topk, CEM_PAPER.horizon) == (800, 10, 10, 1)
    assert CEM_PAPER.radius == 0.075 and CEM_PAPER.variant == "paper"
    assert CEMConfig().xyz_std == 0.0375 and CEM_NOTEBOOK.xyz_std == 0.05
