"""The general pretraining mix (clip banks), packaged weights, and the vjepa2_tiny preset."""

import json

import numpy as np
import pytest
import torch

from vjepa2.data.clip_bank import ClipBankDataset, bank_sources
from vjepa2.errors import UserError
from vjepa2.train.mix import prepare_mix
from vjepa2.weights import WeightsError, load_encoder, load_predictor
from vjepa2.weights.files import atomic_save
from vjepa2.weights.packaged import PACKAGED, package_weights, packaged_path, read_packaged


def _bank(path, n: int, frames: int = 6, value: int | None = None) -> str:
    rng = np.random.default_rng(n)
    clips = rng.integers(0, 256, (n, frames, 16, 16, 3), dtype=np.uint8)
    if value is not None:
        clips[:] = value
    np.save(path, clips)
    return str(path)


def test_prepare_mix_writes_banks_and_a_manifest(tmp_path):
    manifest = prepare_mix(tmp_path, size=64, frames=4, scale=0.002, sources=["synthetic", "digits", "real-video"])
    meta = json.loads(manifest.read_text())
    assert set(meta["banks"]) == {"synthetic", "digits", "real-video"}
    for bank in meta["banks"].values():
        clips = np.load(tmp_path / bank["file"], mmap_mode="r")
        assert clips.dtype == np.uint8 and clips.shape[1:] == (4, 64, 64, 3) and len(clips) == bank["clips"]
    digits = np.load(tmp_path / "digits.npy")
    assert (digits[:, 0] == digits[:, -1]).all()  # repeated-frame clips
    assert [w for _, w in bank_sources([str(manifest)])] == [2.0, 1.0, 0.5]
    with pytest.raises(UserError, match="unknown mix source"):
        prepare_mix(tmp_path, sources=["imagenet"])


def test_bank_batches_are_a_function_of_seed_step_and_index_and_follow_the_weights(tmp_path):
    banks = [_bank(tmp_path / "a.npy", 5, value=0), _bank(tmp_path / "b.npy", 7, value=255)]
    data = ClipBankDataset(banks, [3.0, 1.0], frames=3, frame_step=2, crop=16, seed=1)
    one, two = data.batch(4, range(8)), data.batch(4, range(8))
    assert one.shape == (8, 3, 3, 16, 16) and torch.equal(one, two)
    assert not torch.equal(one, data.batch(5, range(8)))
    assert torch.equal(data.batch(4, [2, 6]), one[[2, 6]])  # rank r of 4 takes samples r::4: the same clips
    from_a = np.mean([data.clip(s, 0).mean().item() < 0 for s in range(400)])  # bank a is black
    assert 0.68 < from_a < 0.82  # weight 3:1


def test_bank_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 4, 4), np.float32))
    with pytest.raises(UserError, match="bad.npy: a clip bank is uint8"):
        ClipBankDataset([str(bad)], [1.0], frames=2)
    short = _bank(tmp_path / "short.npy", 2, frames=3)
    with pytest.raises(UserError, match="short.npy: clips of 3 frames"):
        ClipBankDataset([short], [1.0], frames=4)


def test_pretraining_on_a_mix_manifest(tmp_path):
    from vjepa2.config_io import load_config
    from vjepa2.train.metrics import read_metrics
    from vjepa2.train.pretrain import train
    from vjepa2.train.pretrain_config import PretrainConfig

    _bank(tmp_path / "a.npy", 4, frames=8)
    _bank(tmp_path / "b.npy", 3, frames=8)
    manifest = tmp_path / "mix.json"
    banks = {"a": {"file": "a.npy", "weight": 1}, "b": {"file": "b.npy", "weight": 2}}
    manifest.write_text(json.dumps({"banks": banks}))
    overrides = ["model.encoder=vit_test", "data.frames=4", "data.crop=64", "data.batch_size=2", "optim.steps=2",
                 f"data.datasets=[{manifest}]", f"run.out={tmp_path / 'run'}", "run.progress=false"]  # fmt: skip
    out = train(load_config(PretrainConfig, None, overrides))
    last = read_metrics(out / "metrics.jsonl")[-1]
    assert last["step"] == 2 and np.isfinite(last["loss"])


def test_package_weights_round_trip_and_refuses_to_overwrite(tmp_path):
    torch.manual_seed(0)
    enc, pred = load_encoder("vit_test"), load_predictor("vit_test")
    ckpt = tmp_path / "latest.pt"
    atomic_save({"target_encoder": enc.state_dict(), "predictor": pred.state_dict(), "step": 7, "config": {}}, ckpt)
    out = package_weights(ckpt, tmp_path / "w.safetensors", {"note": "test"})
    parts, meta = read_packaged(out)
    assert meta["step"] == 7 and meta["note"] == "test"
    assert all(v.dtype == torch.bfloat16 for v in parts["encoder"].values())
    fresh = load_encoder("vit_test")
    fresh.load_state_dict(parts["encoder"])
    for name, value in fresh.state_dict().items():  # bf16 round trip
        torch.testing.assert_close(value, enc.state_dict()[name].bfloat16().float())
    with pytest.raises(WeightsError, match="exists"):
        package_weights(ckpt, out)


def test_vjepa2_tiny_resolves_to_the_packaged_file():
    path = packaged_path("vjepa2_tiny")
    assert (
        path.name == PACKAGED["vjepa2_tiny"]
        and path.parent.name == "pretrained"
        and path.parent.parent.name == "vjepa2"
    )
    with pytest.raises(WeightsError, match="no weights ship"):
        packaged_path("vit_large")
    with pytest.raises(WeightsError, match="either weights"):
        load_encoder("vjepa2_tiny", "some.pt", pretrained=True)


def test_shipped_vjepa2_tiny_loads_and_is_not_random():
    enc = load_encoder("vjepa2_tiny", pretrained=True).eval()
    pred = load_predictor("vjepa2_tiny", pretrained=True)
    torch.manual_seed(0)
    random = load_encoder("vjepa2_tiny").eval()
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.inference_mode():
        ours, theirs = enc(x), random(x)
    assert ours.shape == (1, 4 * 8 * 8, 192) and torch.isfinite(ours).all()
    assert not torch.allclose(ours, theirs, atol=1e-2)
    assert sum(p.numel() for p in pred.parameters()) > 0
