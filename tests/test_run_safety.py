"""Nothing lost, nothing silent in a run folder: NaN guard, damaged checkpoints, resume checks, locks, debris."""

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from tests.train.test_pretrain import clips, tiny_config
from vjepa2.errors import RunFolderError, TrainingDiverged
from vjepa2.masks import MaskConfig, sample_lists, token_grid
from vjepa2.train.distributed import DistWorld
from vjepa2.train.metrics import read_metrics
from vjepa2.train.pretrain import step_masks, train
from vjepa2.train.pretrain_config import ModelSection
from vjepa2.train.rundir import lock_run, release_run
from vjepa2.weights.files import CheckpointError, atomic_save, load_checkpoint


def _nan_after(batches, good: int):
    for i, batch in enumerate(batches):
        yield (torch.full_like(batch, float("nan")) if i >= good else batch), 0


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, steps=6)  # checkpoint every 2 steps
    with pytest.raises(TrainingDiverged, match="step 4"):
        train(cfg, batches=_nan_after(clips(6), good=3))
    ckpt = load_checkpoint(tmp_path / "latest.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["encoder"].values())
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_non_finite_gradient_stops_before_the_optimiser_step(tmp_path, monkeypatch):
    from vjepa2.train import objectives

    real = objectives.Student.forward

    def poisoned(self, clips, masks, targets, **kwargs):  # finite loss, inf gradient
        loss = real(self, clips, masks, targets, **kwargs)
        return loss + 0.0 * next(self.parameters()).sum() * torch.tensor(float("inf"))

    monkeypatch.setattr(objectives.Student, "forward", poisoned)
    with pytest.raises(TrainingDiverged):
        train(tiny_config(tmp_path, steps=2), batches=((c, 0) for c in clips(2)))
    assert not (tmp_path / "latest.pt").exists()


def test_damaged_latest_falls_back_to_previous_and_says_so(tmp_path, caplog):
    caplog.set_level("INFO", logger="vjepa2")
    cfg = tiny_config(tmp_path, steps=4)
    train(cfg, batches=((c, 0) for c in clips(4)))
    assert load_checkpoint(tmp_path / "previous.pt")["step"] == 2
    data = bytearray((tmp_path / "latest.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside a tensor: torch.load would accept it
    (tmp_path / "latest.pt").write_bytes(data)
    with pytest.raises(CheckpointError, match="latest.pt"):
        load_checkpoint(tmp_path / "latest.pt")
    train(replace(cfg, optim=replace(cfg.optim, steps=5)), batches=((c, 0) for c in clips(3)))
    err = caplog.text
    assert "latest.pt: damaged checkpoint" in err and "resumed from" in err and "previous.pt at step 2" in err


def test_resume_refuses_another_model_and_keeps_the_record(tmp_path):
    cfg = tiny_config(tmp_path, steps=2)
    train(cfg, batches=((c, 0) for c in clips(2)))
    record = (tmp_path / "config.yaml").read_text()
    other = replace(cfg, model=ModelSection(encoder="vit_tiny"), optim=replace(cfg.optim, steps=4))
    with pytest.raises(RunFolderError, match="model.encoder: 'vit_test' -> 'vit_tiny'"):
        train(other, batches=((c, 0) for c in clips(2)))
    assert (tmp_path / "config.yaml").read_text() == record


def test_resume_compares_the_resolved_rope_layout(tmp_path):
    cfg = tiny_config(tmp_path, steps=2)
    explicit = replace(cfg, model=replace(cfg.model, rope_layout="tiled"))  # vit_test's own layout, spelled out
    train(explicit, batches=((c, 0) for c in clips(2)))
    train(replace(cfg, optim=replace(cfg.optim, steps=3)), batches=((c, 0) for c in clips(1)))  # None: the same
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 3
    other = replace(cfg, model=replace(cfg.model, rope_layout="interleaved"), optim=replace(cfg.optim, steps=4))
    with pytest.raises(RunFolderError, match="model.rope_layout: 'tiled' -> 'interleaved'"):
        train(other, batches=((c, 0) for c in clips(1)))


def test_resume_warns_about_changed_hyper_parameters(tmp_path, caplog):
    cfg = tiny_config(tmp_path, steps=2)
    train(cfg, batches=((c, 0) for c in clips(2)))
    changed = replace(cfg, optim=replace(cfg.optim, steps=3, lr=5e-4))
    train(changed, batches=((c, 0) for c in clips(1)))
    err = caplog.text
    assert "optim.lr: 0.001 -> 0.0005" in err and "optim.steps: 2 -> 3" in err


def test_a_second_live_run_on_the_same_folder_is_refused(tmp_path):
    lock_run(tmp_path)  # a live run in this process; a second process must not write to the folder
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vjepa2", "pretrain", f"run.out={tmp_path}", "model.encoder=vit_test"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        release_run(tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {tmp_path}: another run (pid {os.getpid()})" in proc.stderr


def test_interrupted_save_debris_is_removed_and_files_follow_the_umask(tmp_path, caplog):
    caplog.set_level("INFO", logger="vjepa2")
    (tmp_path / ".latest.pt.abc123.tmp").write_bytes(b"x" * 100)
    train(tiny_config(tmp_path, steps=2), batches=((c, 0) for c in clips(2)))
    assert not list(tmp_path.glob(".*.tmp"))
    assert "removed 1 temporary file" in caplog.text
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "latest.pt").stat().st_mode & 0o777 == 0o666 & ~mask
    atomic_save({"a": 1}, tmp_path / "x.pt")
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_masks_truncate_per_device_group_not_per_global_batch(tmp_path):
    cfg = tiny_config(tmp_path)
    mask = MaskConfig(num_blocks=2, spatial_scale=(0.2, 0.2))
    cfg = replace(cfg, data=replace(cfg.data, batch_size=8, mask_group=2), masks=(mask,))
    gen = torch.Generator().manual_seed(cfg.run.seed * 1_000_003)
    lists, _ = sample_lists(mask, token_grid(4, 64, 16, 2), 8, cfg.run.seed, gen)  # untruncated, step 0
    per_rank = [step_masks(cfg, 0, DistWorld(rank=r, size=4), torch.device("cpu"))[0][0] for r in range(4)]
    for r, ctx in enumerate(per_rank):  # rank r holds samples r::4, one group: truncated to their own minimum
        mine = lists[r::4]
        assert torch.equal(ctx, torch.stack([c[: min(len(m) for m in mine)] for c in mine]))
    one = step_masks(cfg, 0, DistWorld(), torch.device("cpu"))[0][0]  # one process holds every group: global minimum
    assert one.shape[1] == min(len(c) for c in lists)
    assert max(c.shape[1] for c in per_rank) > one.shape[1]  # per-device truncation keeps more context


def test_official_mask_token_is_the_default():
    assert ModelSection().mask_token_per_config is False


def test_feature_cache_is_keyed_on_encoder_weights_and_file_content(tmp_path):
    from vjepa2.train.features import _cache_name, encoder_digest
    from vjepa2.weights import load_encoder

    torch.manual_seed(0)
    a, b = load_encoder("vit_test"), load_encoder("vit_test")  # two encoders both saved as "latest.pt"
    assert encoder_digest(a) != encoder_digest(b)
    b.load_state_dict(a.state_dict())
    assert encoder_digest(a) == encoder_digest(b)
    traj = tmp_path / "ep.npz"
    traj.write_bytes(b"one")
    first = _cache_name(str(traj))
    traj.write_bytes(b"other content")  # same path, new file
    assert _cache_name(str(traj)) != first


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_start_with_a_missing_peer_fails_within_the_timeout(monkeypatch):
    import time

    from vjepa2.train import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    tic = time.monotonic()
    with pytest.raises(RuntimeError, match="within 2 s"):
        distributed.init("cpu", timeout=2)
    assert time.monotonic() - tic < 60


@pytest.mark.parametrize(
    ("env", "message"),
    [({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is outside"), ({"WORLD_SIZE": "2"}, "RANK is not set"),
     ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"), ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "5"}, "LOCAL_RANK")],
)  # fmt: skip
def test_distributed_environment_is_validated(monkeypatch, env, message):
    from vjepa2.errors import UserError
    from vjepa2.train import distributed

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UserError, match=message):
        distributed.init("cpu")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=true", "data.batch_size: expected an integer, got True"),
        ("data.batch_size=0", "data.batch_size: must be >=1"),
        ("data.batch_size=-4", "data.batch_size: must be >=1"),
        ("run.checkpoint_every=0", "run.checkpoint_every: must be >=1"),
        ("optim.grad_accum=0", "optim.grad_accum: must be >=1"),
        ("optim.steps=-5", "optim.steps: must be >=1"),
        ("run.strategy=zero3", "run.strategy: 'zero3' is not one of ['ddp', 'fsdp']"),
        ("optim.ema=[2.0,3.0]", "optim.ema: must be [0, 1]"),
        ("optim.ema=[0.9]", "optim.ema: expected a list of 2 values"),
        ("data.crop=60", "data.crop=60 must be a multiple of the patch size 16"),
        ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
        ("run.progress=1", "run.progress: expected true or false"),
        ("data.mask_group=0", "data.mask_group: must be >=1"),
        ("model.encoder=vit_nope", "unknown encoder preset 'vit_nope'"),
    ],
)
def test_config_values_are_checked_against_their_types_and_ranges(override, message):
    from vjepa2.config_io import load_config
    from vjepa2.errors import ConfigError, UserError
    from vjepa2.train.pretrain_config import PretrainConfig

    with pytest.raises((ConfigError, UserError)) as err:
        load_config(PretrainConfig, None, [override])
    assert message in str(err.value)


def test_train_ac_config_values_are_checked():
    from vjepa2.config_io import load_config
    from vjepa2.errors import ConfigError
    from vjepa2.train.ac_config import ACTrainConfig

    cases = [("data.frames=1", "data.frames"), ("optim.auto_steps=-1", "optim.auto_steps"),
             ("run.dtype=fp16", "'fp16' is not one of"), ("data.batch_size=1.5", "an integer")]  # fmt: skip
    for override, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config(ACTrainConfig, None, [override])


def test_trajectories_follow_the_umask(tmp_path):
    import numpy as np

    from vjepa2.data.trajectories import save_trajectory

    path = save_trajectory(tmp_path / "ep.npz", np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 7), np.float32), fps=4)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_safetensors_outputs_follow_the_umask(tmp_path):
    from vjepa2.weights import load_encoder, save_hf

    folder = save_hf(tmp_path / "hf", encoder=load_encoder("vit_test"))
    mask = os.umask(0)
    os.umask(mask)
    assert (folder / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask
