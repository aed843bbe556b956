"""World-model (V-JEPA 2-AC) training: losses vs the official semantics, WSD schedule, learning, exact resume,
and checkpoints that load as a :class:`~vjepa2.plan.WorldModel`."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from vjepa2.config import ac_predictor_config
from vjepa2.data.poses import poses_to_diffs
from vjepa2.data.trajectories import load_trajectory
from vjepa2.data.transforms import resize_transform
from vjepa2.models import ACPredictor
from vjepa2.plan.load import load_world_model, read_checkpoint_info
from vjepa2.schedules import wsd_lr
from vjepa2.train.ac import ac_losses, train_ac
from vjepa2.train.ac_config import ACDataSection, ACModelSection, ACOptimSection, ACRunSection, ACTrainConfig
from vjepa2.train.metrics import read_metrics
from vjepa2.weights import WeightsError, load_encoder, save_official
from vjepa2.weights.files import load_checkpoint

B, T, HW, D = 2, 4, 16, 48  # ac_vit_test at 64 px: a 4 x 4 grid of width 48


def tiny_config(out, trajectories=(), steps: int = 4, **optim) -> ACTrainConfig:
    optim = {"warmup": 2, "anneal": 0, "start_lr": 1e-4, "lr": 1e-3, **optim}
    return ACTrainConfig(
        model=ACModelSection(encoder="vit_test", predictor="ac_vit_test"),
        data=ACDataSection(
            trajectories=tuple(map(str, trajectories)),
            frames=T,
            resolution=64,
            transform="resize",
            batch_size=4,
            num_workers=0,
        ),  # fmt: skip
        optim=ACOptimSection(steps=steps, **optim),
        run=ACRunSection(out=str(out), dtype="fp32", log_every=1, checkpoint_every=1000, progress=False),
    )


def losses(out) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


def features(batch: int = B, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layer-normed features ``[b, T, HW, D]``, actions ``[b, T - 1, 7]`` and states ``[b, T, 7]``."""
    g = torch.Generator().manual_seed(seed)
    h = F.layer_norm(torch.randn(batch, T, HW, D, generator=g), (D,))
    states = torch.randn(batch, T, 7, generator=g) * 0.1
    return h, poses_to_diffs(states), states


def reference_losses(predictor, h, actions, states, auto_steps: int, detach_seed: bool = False):
    """The official ``app/vjepa_droid/train.py`` losses, written on flattened tokens ``[B, T * tpf, D]``.

    Teacher forcing predicts frames 1..T-1 from frames 0..T-2; the rollout starts from ``[h_0, z_1]`` (the first
    teacher-forcing prediction), feeds ground-truth actions and states, layer-norms and appends each new frame.
    """
    tpf = h.shape[2]
    h = h.flatten(1, 2)

    def ln(x):
        return F.layer_norm(x, (x.shape[-1],))

    z_tf = ln(predictor(h[:, :-tpf], actions, states[:, :-1]))
    jloss = (z_tf - h[:, tpf:]).abs().mean()
    seed = z_tf[:, :tpf].detach() if detach_seed else z_tf[:, :tpf]
    z_ar = torch.cat([h[:, :tpf], seed], dim=1)
    for n in range(1, min(auto_steps, h.shape[1] // tpf - 1)):  # auto_steps 0 or 1: no loop, frame 1 only
        nxt = ln(predictor(z_ar, actions[:, : n + 1], states[:, : n + 1])[:, -tpf:])
        z_ar = torch.cat([z_ar, nxt], dim=1)
    z = z_ar[:, tpf:]
    sloss = (z - h[:, tpf : z.shape[1] + tpf]).abs().mean()
    return jloss, sloss


@pytest.fixture(scope="module")
def predictor() -> ACPredictor:
    torch.manual_seed(0)
    return ACPredictor(ac_predictor_config("ac_vit_test"))


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 5])
def test_losses_match_official_semantics(predictor, steps):
    h, actions, states = features()
    tf, rollout = ac_losses(predictor, h, actions, states, auto_steps=steps)
    ref_tf, ref_rollout = reference_losses(predictor, h, actions, states, steps)
    torch.testing.assert_close(tf, ref_tf, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rollout, ref_rollout.to(rollout), rtol=1e-5, atol=1e-6)
    assert rollout.item() > 0.0  # official: auto_steps 0 still has the one-step term
    tf_only, none = ac_losses(predictor, h, actions, states, auto_steps=steps, rollout_loss=False)
    assert none.item() == 0.0 and tf_only.item() == tf.item()


def _grads(predictor, loss) -> dict[str, torch.Tensor]:
    predictor.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in predictor.named_parameters() if p.grad is not None}


def test_rollout_gradients_flow_through_the_first_prediction(predictor):
    h, actions, states = features(seed=1)
    ours = _grads(predictor, ac_losses(predictor, h, actions, states, auto_steps=2)[1])
    ref = _grads(predictor, reference_losses(predictor, h, actions, states, 2)[1])
    detached = _grads(predictor, reference_losses(predictor, h, actions, states, 2, detach_seed=True)[1])
    tf_only = _grads(predictor, ac_losses(predictor, h, actions, states, rollout_loss=False)[0])
    for name in ref:
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-4, atol=1e-7)
    key = "predictor_embed.weight"
    assert ours[key].abs().sum() > 0
    assert not torch.allclose(ours[key], detached[key], rtol=1e-3, atol=1e-7)  # the seed z_1 carries gradient
    assert not torch.allclose(ours[key], tf_only[key], rtol=1e-3, atol=1e-7)
    first_only = _grads(predictor, ac_losses(predictor, h, actions, states, auto_steps=1)[1])
    assert first_only[key].abs().sum() > 0  # one rollout step is the first prediction alone


def test_wsd_schedule_shape():
    kw = {"warmup": 4, "anneal": 5, "total": 20, "start_lr": 1e-4, "lr": 1e-3, "final_lr": 0.0}
    lrs = [wsd_lr(s, **kw) for s in range(20)]
    assert lrs[0] == pytest.approx(1e-4 + (1e-3 - 1e-4) / 4) and lrs[:4] == sorted(lrs[:4])
    assert all(x == pytest.approx(1e-3) for x in lrs[3:15])  # warmup ends at lr, then stable
    assert lrs[14:] == sorted(lrs[14:], reverse=True) and lrs[15] < 1e-3 and lrs[-1] == pytest.approx(0.0)
    o = ACOptimSection()  # official: 4.5k warmup, stable to 90k, linear anneal to 0 at 94.5k
    off = {"warmup": o.warmup, "anneal": o.anneal, "total": o.steps, "start_lr": o.start_lr, "lr": o.lr}
    assert wsd_lr(o.warmup - 1, final_lr=o.final_lr, **off) == pytest.approx(4.25e-4)
    assert wsd_lr(89_999, final_lr=o.final_lr, **off) == pytest.approx(4.25e-4)
    assert wsd_lr(o.steps - 1, final_lr=o.final_lr, **off) == pytest.approx(0.0)


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory):
    pytest.importorskip("pybullet")
    from vjepa2.envs.collect import collect

    return collect("franka-reach", 3, tmp_path_factory.mktemp("traj"), steps=7, image_size=64, progress=False)


@pytest.fixture(scope="module")
def trained(trajectories, tmp_path_factory):
    """A 4-step run on collected trajectories through the real data pipeline (cached features)."""
    out = train_ac(tiny_config(tmp_path_factory.mktemp("ac"), trajectories, steps=4))
    return out


def test_train_ac_runs_on_collected_trajectories(trained):
    records = read_metrics(trained / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(r["rollout"] > 0 and r["teacher_forcing"] > 0 for r in records)
    kw = {"warmup": 2, "anneal": 0, "total": 4, "start_lr": 1e-4, "lr": 1e-3, "final_lr": 0.0}
    assert [r["lr"] for r in records] == pytest.approx([wsd_lr(r["step"] - 1, **kw) for r in records])
    assert len(list((trained / "features").glob("*/*.npy"))) == 3
    ckpt = load_checkpoint(trained / "latest.pt")
    keys = {"encoder", "predictor", "opt", "step", "rng", "config", "encoder_config", "predictor_config"}
    assert keys <= set(ckpt) and ckpt["step"] == 4


def test_patch_8_encoder_gets_a_matching_predictor_grid(trajectories, tmp_path):
    cfg = tiny_config(tmp_path, trajectories, steps=1)
    out = train_ac(replace(cfg, model=replace(cfg.model, encoder="vit_tiny_p8")))
    wm = load_world_model(out / "latest.pt", dtype="fp32")
    assert wm.predictor.cfg.grid == 8 and wm.tokens_per_frame == 64
    h, actions, states = _trajectory_batch(wm, trajectories)
    assert h.shape[2] == 64 and wm.predict_next(h[:, :2], actions[:, :2], states[:, :2]).shape[-2] == 64


def test_shipped_encoder_by_name_is_reused_frozen(trajectories, tmp_path):
    """``model.encoder_weights: pretrained`` trains on the packaged vjepa2_tiny encoder (the paper's reuse)."""
    cfg = tiny_config(tmp_path, trajectories, steps=1)
    out = train_ac(replace(cfg, model=replace(cfg.model, encoder="vjepa2_tiny", encoder_weights="pretrained")))
    shipped = load_encoder("vjepa2_tiny", pretrained=True).state_dict()
    saved = load_checkpoint(out / "latest.pt")["encoder"]
    assert saved.keys() == shipped.keys() and all(torch.equal(saved[k], shipped[k]) for k in shipped)


def _trajectory_batch(world_model, trajectories) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``T`` frames of each trajectory, encoded: ``(features, actions, states)``."""
    feats, states = [], []
    for path in trajectories:
        traj = load_trajectory(path)
        frames = resize_transform(torch.from_numpy(traj.frames[:T]), 64)  # [3, T, 64, 64]
        feats.append(world_model.encode(frames[None])[0])
        states.append(torch.from_numpy(traj.states[:T]))
    states = torch.stack(states)
    return torch.stack(feats), poses_to_diffs(states), states


def test_learning_reduces_the_loss_on_a_fixed_batch(trained, trajectories, tmp_path):
    batch = _trajectory_batch(load_world_model(trained / "latest.pt", dtype="fp32"), trajectories)
    out = train_ac(tiny_config(tmp_path, steps=25, lr=2e-3), batches=iter([batch] * 25))
    trace = losses(out)
    assert sum(trace[-3:]) / 3 < 0.8 * sum(trace[:3]) / 3


class Killed(Exception):
    pass


def _killed_after(batches):
    yield from batches
    raise Killed


def test_resume_repeats_uninterrupted_run(tmp_path):
    data = [features(4, seed=s) for s in range(6)]
    full = train_ac(tiny_config(tmp_path / "full", steps=6), batches=iter(data))
    part = tmp_path / "part"
    cfg = tiny_config(part, steps=6)
    cfg = ACTrainConfig(cfg.model, cfg.data, cfg.optim, ACRunSection(**{**vars(cfg.run), "checkpoint_every": 3}))
    with pytest.raises(Killed):
        train_ac(cfg, batches=_killed_after(data[:4]))  # dies after step 4, whose checkpoint was not due
    assert load_checkpoint(part / "latest.pt")["step"] == 3
    killed_step4 = read_metrics(part / "metrics.jsonl")[3]
    train_ac(cfg, batches=iter(data[3:]))  # resumes from step 3 and redoes step 4
    records = read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]  # the killed run's step 4 record was dropped
    assert records[3]["loss"] == pytest.approx(killed_step4["loss"], abs=1e-6)
    assert [r["loss"] for r in records] == pytest.approx(losses(full), abs=1e-6)


def test_checkpoint_loads_as_a_world_model_and_predicts(trained, trajectories, tmp_path):
    wm = load_world_model(trained / "latest.pt", dtype="fp32")
    ckpt = load_checkpoint(trained / "latest.pt")
    for key, value in ckpt["predictor"].items():
        torch.testing.assert_close(wm.predictor.state_dict()[key], value)
    info = read_checkpoint_info(trained / "latest.pt")
    assert info.step == 4 and info.transform == "resize" and wm.predictor.cfg == info.predictor
    h, actions, states = _trajectory_batch(wm, trajectories[:1])
    energies = wm.energy_fn(h[:, :1], states[:, :1], h[0, 1])(torch.zeros(5, 2, 7))
    assert energies.shape == (5,) and torch.isfinite(energies).all()
    pred = wm.rollout(h[:, :1], states[:, :1], actions[:, :1])
    assert pred.shape == (1, HW, D) and pred.mean(-1).abs().max() < 1e-4  # layer-normed over D
    torch.testing.assert_close(pred.std(-1, correction=0), torch.ones(1, HW), atol=1e-2, rtol=0)
    # The official layout (no configs) loads with presets and gives the same predictions.
    official = save_official(tmp_path / "ac.pt", encoder=wm.encoder, predictor=wm.predictor)
    wm2 = load_world_model(official, dtype="fp32", encoder="vit_test", predictor="ac_vit_test")
    torch.testing.assert_close(wm2.rollout(h[:, :1], states[:, :1], actions[:, :1]), pred)
    with pytest.raises(WeightsError, match=r"ac\.pt stores no encoder and predictor config"):
        load_world_model(official)
    with pytest.raises(WeightsError, match="ac.pt"):
        load_world_model(official, encoder="vit_tiny", predictor="ac_vit_tiny")
