import pytest
import torch
import torch.nn.functional as F

from vjepa2.config import ac_predictor_config, encoder_config
from vjepa2.data.poses import compute_new_pose, pose_diff
from vjepa2.models import ACPredictor, VisionTransformer
from vjepa2.plan.landscape import action_grid, energy_landscape, plot_landscape
from vjepa2.plan.world_model import WorldModel

HW, D = 16, 48  # vit_test / ac_vit_test at 64 px


@pytest.fixture(scope="module")
def models() -> tuple[VisionTransformer, ACPredictor]:
    torch.manual_seed(0)
    return VisionTransformer(encoder_config("vit_test")).eval(), ACPredictor(ac_predictor_config("ac_vit_test")).eval()


@pytest.fixture(scope="module")
def wm(models) -> WorldModel:
    return WorldModel(*models, dtype="fp32")


@pytest.fixture(scope="module")
def wm_ref(models) -> WorldModel:
    """The straightforward rollout (the predictor on the whole history, every step), no cached fast path."""
    return WorldModel(*models, dtype="fp32", cached=False)


class CallCounter:
    def __init__(self, module: torch.nn.Module) -> None:
        self.batches: list[int] = []
        self.handle = module.register_forward_hook(lambda m, args, out: self.batches.append(args[0].shape[0]))

    def __enter__(self) -> "CallCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def random_inputs(S: int, T: int, H: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = F.layer_norm(torch.randn(S, T, HW, D, generator=g), (D,))
    s = torch.cat([torch.rand(S, T, 6, generator=g) * 0.4 - 0.2, torch.rand(S, T, 1, generator=g)], -1)
    a = torch.randn(S, H, 7, generator=g) * 0.05
    return z, s, a


def test_encode_images_and_clips_per_frame(wm, models):
    encoder = models[0]
    clip = torch.randn(2, 3, 3, 64, 64)
    feats = wm.encode(clip)
    assert feats.shape == (2, 3, HW, D) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.mean(-1), torch.zeros(2, 3, HW), atol=1e-5, rtol=0)
    for t in range(3):
        torch.testing.assert_close(wm.encode(clip[:, :, t]), feats[:, t : t + 1])
        with torch.no_grad():
            manual = encoder(clip[:, :, t : t + 1].repeat(1, 1, 2, 1, 1))
        torch.testing.assert_close(feats[:, t], F.layer_norm(manual, (D,)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="expects 64x64"):
        wm.encode(torch.randn(1, 3, 32, 32))


def test_predict_next_is_last_step_layer_normed(wm, models):
    z, s, a = random_inputs(3, 2, 2)
    out = wm.predict_next(z, a, s)
    with torch.no_grad():
        full = models[1](z.flatten(1, 2), a, s)
    assert out.shape == (3, HW, D)
    torch.testing.assert_close(out, F.layer_norm(full[:, -HW:], (D,)))


def manual_rollout(wm, z0, s0, actions):
    """One candidate at a time, history grown with torch.cat (the official loop)."""
    outs = []
    for i in range(actions.shape[0]):
        frames, states = z0, s0
        for h in range(actions.shape[1]):
            pred = wm.predict_next(frames, actions[i : i + 1, : h + 1], states)
            frames = torch.cat([frames, pred[:, None]], dim=1)
            states = torch.cat([states, compute_new_pose(states[:, -1:], actions[i : i + 1, h : h + 1])], dim=1)
        outs.append(pred)
    return torch.cat(outs)


@pytest.mark.parametrize("H", [1, 3])
def test_batched_rollout_matches_one_at_a_time(wm, wm_ref, H):
    z, s, a = random_inputs(5, 1, H)
    z0, s0 = z[:1], s[:1]
    with CallCounter(wm_ref.predictor) as calls:
        out = wm_ref.rollout(z0, s0, a)
    assert calls.batches == [5] * H  # one batched call per horizon step
    assert out.shape == (5, HW, D)
    torch.testing.assert_close(out, manual_rollout(wm_ref, z0, s0, a), atol=2e-5, rtol=1e-5)
    # A context already expanded over the candidates gives the same result (and takes the reference path).
    assert wm.uses_cache(z0, s0) and not wm.uses_cache(z0.expand(5, -1, -1, -1), s0.expand(5, -1, -1))
    torch.testing.assert_close(wm.rollout(z0.expand(5, -1, -1, -1), s0.expand(5, -1, -1), a), out)
    # The cached fast path never calls the predictor's forward and agrees.
    with CallCounter(wm.predictor) as calls:
        torch.testing.assert_close(wm.rollout(z0, s0, a), out, atol=2e-5, rtol=1e-5)
    assert calls.batches == []


def test_rollout_depends_on_every_action(wm):
    z, s, a = random_inputs(1, 1, 2)
    base = wm.rollout(z, s, a)
    for h in range(2):
        other = a.clone()
        other[:, h, :3] += 0.05
        assert not torch.allclose(wm.rollout(z, s, other), base)


def test_rollout_with_longer_context_needs_past_actions(wm):
    z, s, a = random_inputs(1, 2, 2)
    past, future = a[:, :1], a[:, 1:]
    with pytest.raises(ValueError, match="past_actions"):
        wm.rollout(z, s, future)
    out = wm.rollout(z, s, future, past_actions=past)
    torch.testing.assert_close(out, wm.predict_next(z, a, s))


def test_energy_is_mean_l1(wm):
    pred, goal = torch.randn(4, HW, D), torch.randn(HW, D)
    expected = torch.stack([(p - goal).abs().mean() for p in pred])
    torch.testing.assert_close(wm.energy(pred, goal), expected)
    torch.testing.assert_close(wm.energy(pred, goal[None, None]), expected)


def test_energy_fn_one_call_per_step_and_bf16_close(models, wm, wm_ref):
    z, s, a = random_inputs(1, 1, 2)
    goal = torch.randn(HW, D)
    candidates = torch.randn(6, 2, 7) * 0.05
    with CallCounter(wm_ref.predictor) as calls:
        e32 = wm_ref.energy_fn(z, s, goal)(candidates)
    assert e32.shape == (6,) and calls.batches == [6, 6]
    torch.testing.assert_close(wm.energy_fn(z, s, goal)(candidates), e32, atol=1e-5, rtol=1e-5)
    bf16 = WorldModel(*models, dtype="bf16")
    pred16, pred32 = bf16.rollout(z, s, a), wm.rollout(z, s, a)
    assert pred16.dtype == torch.float32
    assert (pred16 - pred32).abs().mean() < 0.05
    with pytest.raises(ValueError, match="dtype"):
        WorldModel(*models, dtype="int8")


def test_proprio_term_of_the_energy(models):
    """DINO-WM's proprio term: state_scale x mean L1 of the integrated final position to the goal's, plus the visual
    L1; with ``visual_weight=0`` the predictor is never called."""
    wm = WorldModel(*models, dtype="fp32", pose_fn=lambda s, a: s + a)
    z, s, _ = random_inputs(1, 1, 2)
    actions, goal, goal_pose = torch.randn(5, 3, 7), torch.randn(HW, D), torch.tensor([0.3, -0.2])
    final = s[0, -1] + actions.sum(1)
    expected = (final[:, :2] - goal_pose).abs().mean(-1) * wm.predictor.cfg.state_scale
    with CallCounter(wm.predictor) as calls:
        proprio = wm.energy_fn(z, s, goal, goal_pose=goal_pose, proprio_weight=2.0, visual_weight=0.0)(actions)
    assert calls.batches == []
    torch.testing.assert_close(proprio, 2.0 * expected)
    both = wm.energy_fn(z, s, goal, goal_pose=goal_pose, proprio_weight=2.0)(actions)
    torch.testing.assert_close(both, wm.energy_fn(z, s, goal)(actions) + 2.0 * expected)
    with pytest.raises(ValueError, match="goal pose"):
        wm.energy_fn(z, s, goal, proprio_weight=1.0)


def test_energy_landscape_single_batched_call(wm_ref, tmp_path):
    frames = torch.randn(2, 3, 64, 64)
    s0 = torch.tensor([0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.5])
    s1 = s0 + torch.tensor([0.02, -0.03, 0.0, 0.0, 0.0, 0.05, 0.0])
    with CallCounter(wm_ref.predictor) as calls:
        land = energy_landscape(wm_ref, frames[0], frames[1], s0, s1, span=0.06, n=5)
    assert calls.batches == [25]
    assert land.u.shape == land.v.shape == land.energy.shape == (5, 5) and land.axes == ("x", "y")
    torch.testing.assert_close(land.u[0], torch.linspace(-0.06, 0.06, 5))
    torch.testing.assert_close(land.v[:, 0], torch.linspace(-0.06, 0.06, 5))
    torch.testing.assert_close(land.action, pose_diff(s0.double(), s1.double()).float())
    # Row i, column j is the ground-truth action with (dx, dy) = (u[j], v[i]): compare one entry to a single rollout.
    feats = wm_ref.encode(frames)
    action = land.action.clone()
    action[:2] = torch.stack([land.u[1, 3], land.v[1, 3]])
    single = wm_ref.energy(wm_ref.rollout(feats[:1], s0.view(1, 1, 7), action.view(1, 1, 7)), feats[1, 0])
    torch.testing.assert_close(land.energy[1, 3], single[0], atol=1e-5, rtol=1e-5)
    i = int(land.energy.argmin())
    assert land.argmin == (float(land.u.flatten()[i]), float(land.v.flatten()[i]))
    pytest.importorskip("matplotlib")
    path = plot_landscape(land, tmp_path / "land.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_energy_landscape_over_z_and_gripper(wm):
    """A grasp landscape sweeps (dz, dgripper) with their own spans; the other dims stay at the ground truth."""
    frames = torch.randn(2, 3, 64, 64)
    s0 = torch.tensor([0.4, 0.0, 0.3, 3.1, 0.1, -0.2, 0.0])
    s1 = s0 + torch.tensor([0.01, 0.0, -0.03, 0.0, 0.0, 0.0, 1.0])
    land = energy_landscape(wm, frames[0], frames[1], s0, s1, span=(0.05, 1.0), n=3, axes=("z", "gripper"))
    torch.testing.assert_close(land.u[0], torch.tensor([-0.05, 0.0, 0.05]))
    torch.testing.assert_close(land.v[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert land.truth == pytest.approx((-0.03, 1.0), abs=1e-6)
    _, _, actions = action_grid((0.05, 1.0), 3, ("z", "gripper"), base=land.action)
    assert (actions[:, 0, 0] == land.action[0]).all() and actions[8, 0, 6] == 1.0 and actions[8, 0, 2] == 0.05
    with pytest.raises(ValueError, match="unknown action axis"):
        action_grid(0.1, 3, ("x", "elbow"))


def test_action_grid_layout():
    dx, dy, actions = action_grid(0.1, 3)
    assert actions.shape == (9, 1, 7) and (actions[:, :, 2:] == 0).all()
    torch.testing.assert_close(actions[5, 0, :2], torch.tensor([0.1, 0.0]))  # row 1 (dy=0), column 2 (dx=0.1)
