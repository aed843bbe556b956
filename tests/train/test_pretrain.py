"""Pretraining: schedules, EMA, atomic checkpoints, exact resume, pixel baseline, DDP == single process."""

import os
import socket
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp

from vjepa2.schedules import cosine_wd, ema_momentum, linear_decay_lr, warmup_cosine_lr
from vjepa2.train.distributed import DistWorld
from vjepa2.train.ema import ema_update
from vjepa2.train.metrics import read_metrics
from vjepa2.train.pretrain import build_models, step_masks, train
from vjepa2.train.pretrain_config import DataSection, ModelSection, OptimSection, PretrainConfig, RunSection
from vjepa2.weights import load_encoder, load_predictor
from vjepa2.weights.files import atomic_save, load_checkpoint


def tiny_config(out, steps: int = 4, **run) -> PretrainConfig:
    return PretrainConfig(
        model=ModelSection(encoder="vit_test"),
        data=DataSection(frames=4, crop=64, batch_size=4),
        optim=OptimSection(steps=steps, warmup=2, start_lr=1e-4, lr=1e-3, final_lr=1e-3),
        run=RunSection(out=str(out), log_every=1, checkpoint_every=2, progress=False, **run),
    )


def clips(n: int, batch: int = 4, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 4, 64, 64, generator=g) for _ in range(n)]


def smooth_clip(seed: int = 0) -> torch.Tensor:
    """Clips of per-sample colour gradients: predictable from context, unlike white noise."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-1, 1, 64)
    coef = torch.randn(3, 4, 3, 1, 1, 1, generator=g)
    x = coef[0] + ramp.view(1, 1, 1, 1, 64) * coef[1] + ramp.view(1, 1, 1, 64, 1) * coef[2]
    return x.expand(4, 3, 4, 64, 64).contiguous()


def losses(out) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


def test_warmup_constant_and_cooldown_schedules():
    lrs = [warmup_cosine_lr(s, warmup=4, total=20, start_lr=1e-4, lr=5e-4, final_lr=5e-4) for s in range(20)]
    assert lrs[0] == pytest.approx(2e-4) and lrs[3] == pytest.approx(5e-4)
    assert all(x == pytest.approx(5e-4) for x in lrs[4:])  # final_lr == lr: constant after warmup
    decay = [warmup_cosine_lr(s, warmup=0, total=10, start_lr=0, lr=1.0, final_lr=0.0) for s in range(11)]
    assert decay == sorted(decay, reverse=True) and decay[-1] == pytest.approx(0.0)
    cool = [linear_decay_lr(s, total=10, lr=1.0, final_lr=0.0, ipe_scale=1.25) for s in range(10)]
    assert cool[0] == 1.0 and cool[-1] == pytest.approx(1 - 9 / 12.5)  # never reaches final_lr (official quirk)
    assert cosine_wd(5, total=10, wd=0.04, final_wd=0.04) == pytest.approx(0.04)
    assert ema_momentum(3, total=10, start=0.99925, end=0.99925) == 0.99925
    assert ema_momentum(10, total=10, start=0.998, end=1.0) == pytest.approx(1.0)


def test_ema_matches_naive_loop():
    online, target = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)
    expected = [0.9 * t + 0.1 * o for t, o in zip(target.parameters(), online.parameters(), strict=True)]
    ema_update(target, online, 0.9)
    for p, e in zip(target.parameters(), expected, strict=True):
        torch.testing.assert_close(p, e)


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_save({"step": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_save({"step": 2, "x": Boom()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_resume_repeats_uninterrupted_run(tmp_path):
    data = clips(6)
    full = train(tiny_config(tmp_path / "full", steps=6), iter([(x, 0) for x in data]))
    part = tmp_path / "part"
    train(tiny_config(part, steps=3), iter([(x, 0) for x in data[:3]]))  # "killed" after step 3 (checkpointed)
    train(tiny_config(part, steps=6), iter([(x, 0) for x in data[3:]]))  # resumes from latest.pt
    assert losses(part) == pytest.approx(losses(full), abs=1e-6)
    ckpt = load_checkpoint(part / "latest.pt")
    assert ckpt["step"] == 6 and {"encoder", "target_encoder", "predictor", "opt", "scaler", "rng"} <= set(ckpt)


def test_learning_reduces_loss_and_checkpoint_loads_through_loaders(tmp_path):
    x = smooth_clip()
    out = train(tiny_config(tmp_path, steps=30, dtype="fp32"), iter([(x, 0)] * 30))
    trace = losses(out)
    assert sum(trace[-5:]) / 5 < 0.85 * sum(trace[:5]) / 5
    enc = load_encoder("vit_test", out / "latest.pt")
    pred = load_predictor("vit_test", out / "latest.pt")
    assert isinstance(enc, torch.nn.Module) and isinstance(pred, torch.nn.Module)
    assert read_metrics(out / "metrics.jsonl")[-1]["teacher_std"] > 0.1


def test_pixel_baseline_runs_and_learns(tmp_path):
    x = smooth_clip()
    out = train(tiny_config(tmp_path, steps=20, objective="pixel", dtype="fp32"), iter([(x, 0)] * 20))
    trace = losses(out)
    assert trace[-1] < trace[0]
    # the exported encoder (target_encoder, what probes and train-ac load) follows the student, as for V-JEPA
    ckpt = load_checkpoint(out / "latest.pt")
    torch.manual_seed(0)
    init = load_checkpoint(train(tiny_config(tmp_path / "init", steps=1, objective="pixel", dtype="fp32"),
                                 iter([(x, 0)])) / "latest.pt")  # fmt: skip
    moved = max((ckpt["target_encoder"][k] - init["target_encoder"][k]).abs().max() for k in init["target_encoder"])
    assert moved > 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, data: list[torch.Tensor], strategy: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from vjepa2.train import distributed

    try:
        cfg = tiny_config(out, steps=len(data), dtype="fp32", strategy=strategy)
        train(cfg, iter([(x[rank::world], 0) for x in data]))
        distributed.cleanup(barrier=True)
    finally:
        distributed.cleanup()


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_processes_match_single_process(tmp_path, strategy):
    data = clips(3)
    single = train(tiny_config(tmp_path / "single", steps=3, dtype="fp32"), iter([(x, 0) for x in data]))
    out = tmp_path / strategy
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), data, strategy), nprocs=2, join=True)
    assert losses(out) == pytest.approx(losses(single), abs=1e-5)
    a, b = load_checkpoint(single / "latest.pt"), load_checkpoint(out / "latest.pt")
    for part in ("encoder", "target_encoder", "predictor"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], atol=1e-4, rtol=1e-3)
    assert set(a["opt"]["state"]) == set(b["opt"]["state"])


def test_distributed_request_that_cannot_start_is_loud(monkeypatch):
    from vjepa2.train import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")  # nothing listens there
    monkeypatch.setattr(distributed.dist, "init_process_group", _refuse)
    with pytest.raises(RuntimeError, match="WORLD_SIZE=2"):
        distributed.init("cpu")


def _refuse(**kwargs):
    raise RuntimeError("connection refused")


def test_config_rejects_unknown_objective(tmp_path):
    with pytest.raises(ValueError, match="objective"):
        replace(tiny_config(tmp_path), run=RunSection(objective="mae"))


def test_cooldown_changes_frames_and_crop_from_a_checkpoint(tmp_path):
    """Progressive resolution: a 4-frame 64 px run continues at 8 frames / 96 px with a linear LR decay."""
    from vjepa2.train.pretrain import cooldown_config

    base = train(tiny_config(tmp_path / "base", steps=2), iter([(x, 0) for x in clips(2)]))
    cfg = cooldown_config(tiny_config(tmp_path / "cool", steps=3), str(base / "latest.pt"), frames=8, crop=96, steps=3)
    g = torch.Generator().manual_seed(1)
    long = [torch.randn(4, 3, 8, 96, 96, generator=g) for _ in range(3)]
    out = train(cfg, iter([(x, 0) for x in long]))
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[0]["lr"] > records[1]["lr"] > records[2]["lr"]  # linear decay, no warmup
    start = load_checkpoint(base / "latest.pt")["encoder"]
    first = load_checkpoint(out / "latest.pt")["encoder"]
    assert all(start[k].shape == first[k].shape for k in start)  # RoPE: no weights to resize


def test_pretrain_on_video_files_skips_and_counts_corrupt_files(tmp_path):
    from vjepa2.config_io import load_config
    from vjepa2.data.synthetic import WorldConfig, write_videos
    from vjepa2.train.pretrain_config import PretrainConfig

    csv = write_videos(tmp_path / "videos", n=6, seed0=0, config=WorldConfig(resolution=64, frames=12))
    (tmp_path / "videos" / "bad.mp4").write_bytes(b"\x00not a video" * 100)
    with csv.open("a") as f:
        f.write(f"{tmp_path / 'videos' / 'bad.mp4'} 0\n")
    overrides = [
        "model.encoder=vit_test",
        f"data.datasets=[{csv}]",
        "data.frames=4",
        "data.crop=64",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.ipe=2",
        "data.fps=null",
        "data.frame_step=2",
        "optim.steps=4",
        "optim.warmup=1",
        f"run.out={tmp_path / 'run'}",
        "run.log_every=1",
        "run.progress=false",
    ]
    with pytest.warns(UserWarning, match="bad.mp4"):
        out = train(load_config(PretrainConfig, None, overrides))
    records = read_metrics(out / "metrics.jsonl")
    assert len(records) == 4 and records[-1]["skipped"] >= 1


def test_pretrain_on_robot_trajectories(tmp_path):
    """Frames of collected trajectories (npz) are a pretraining source, e.g. for the planning demo's encoder."""
    import numpy as np

    from vjepa2.data.trajectories import save_trajectory
    from vjepa2.train.data import is_trajectory_source

    rng = np.random.default_rng(0)
    for i in range(3):
        frames = rng.integers(0, 255, (10, 48, 48, 3), dtype=np.uint8)
        save_trajectory(tmp_path / "data" / f"t{i}.npz", frames, np.zeros((10, 7), np.float32), fps=4.0)
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"")
    assert is_trajectory_source(str(tmp_path / "data")) and not is_trajectory_source(str(tmp_path / "videos"))
    cfg = replace(
        tiny_config(tmp_path / "run", steps=2),
        data=DataSection(datasets=(str(tmp_path / "data"),), frames=4, crop=64, batch_size=4, num_workers=0, ipe=2),
    )  # noqa: E501
    out = train(cfg)
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2]


def test_gradient_accumulation_matches_the_full_batch(tmp_path, monkeypatch):
    from vjepa2.train.objectives import Student

    batch_sizes = []
    forward = Student.forward

    def counting(self, clips, masks, targets, **kwargs):
        batch_sizes.append(clips.shape[0])
        return forward(self, clips, masks, targets, **kwargs)

    monkeypatch.setattr(Student, "forward", counting)
    data = [smooth_clip(seed) for seed in range(3)]
    full = train(tiny_config(tmp_path / "full", steps=3, dtype="fp32"), iter([(x, 0) for x in data]))
    cfg = tiny_config(tmp_path / "accum", steps=3, dtype="fp32")
    cfg = replace(cfg, optim=replace(cfg.optim, grad_accum=2))
    accum = train(cfg, iter([(x, 0) for x in data]))
    assert batch_sizes == [4] * 3 + [2] * 6  # two micro-batches of 2 per step
    assert losses(accum) == pytest.approx(losses(full), abs=1e-5)


def test_patch_8_encoder_gets_a_matching_predictor_and_mask_grid(tmp_path):
    cfg = tiny_config(tmp_path, steps=2, dtype="fp32")
    cfg = replace(cfg, model=ModelSection(encoder="vit_tiny_p8", predictor="vit_test"))
    _, predictor, _ = build_models(cfg)
    assert (predictor.cfg.patch_size, predictor.cfg.embed_dim) == (8, 192)
    masks = step_masks(cfg, 0, DistWorld(), torch.device("cpu"))
    assert max(int(t.max()) for _, t in masks) >= 32  # a 2 x 8 x 8 token grid, not 2 x 4 x 4
    out = train(cfg, iter([(smooth_clip(), 0)] * 2))
    assert load_encoder("vit_tiny_p8", out / "latest.pt").cfg.patch_size == 8


def test_synthetic_world_options_reach_the_batches(tmp_path):
    """``data.world`` (here per-frame pixel noise) configures the built-in synthetic world; crop and frames win."""
    from vjepa2.config_io import load_config
    from vjepa2.train.data import synthetic_batches

    cfg = load_config(PretrainConfig, None, ["data.world.noise=0.1", "data.world.frames=16", "data.crop=64"])
    assert cfg.data.world.noise == 0.1
    data = DataSection(frames=4, crop=64, batch_size=2, num_workers=0)
    clean = next(synthetic_batches(replace(cfg, data=data), DistWorld()))[0]
    noisy = next(synthetic_batches(replace(cfg, data=replace(data, world=cfg.data.world)), DistWorld()))[0]
    assert clean.shape == noisy.shape == (2, 3, 4, 64, 64)
    residual = (noisy - clean)[:, :, 1:] - (noisy - clean)[:, :, :-1]  # the static scene cancels, the noise not
    assert residual.std() > 0.3 and (clean[:, :, 1:] - clean[:, :, :-1]).abs().median() == 0
