"""Weights by name: release files downloaded from a local HTTP server into the torch hub cache, Hugging Face
repositories from a populated local cache with HF_HUB_OFFLINE=1, and presets read from the weights."""

import functools
import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from vjepa2.weights import WeightsError, hub, load_encoder, load_predictor, save_hf


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A tiny official-layout checkpoint served on 127.0.0.1, registered as a release of ``vit_test``."""
    root = tmp_path / "www"
    root.mkdir()
    torch.manual_seed(0)
    enc, pred = load_encoder("vit_test"), load_predictor("vit_test")
    prefix = lambda m: {f"module.backbone.{k}": v for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"target_encoder": prefix(enc), "encoder": prefix(enc), "predictor": prefix(pred)}, root / "tiny.pt")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("VJEPA2_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(hub, "RELEASES", (*hub.RELEASES, hub.Release("vit_test", "tiny.pt", "tiny_hub", None, "1M")))
    yield enc, pred, server
    server.shutdown()


def test_pretrained_by_name_downloads_once_into_the_torch_hub_cache(served, tmp_path):
    enc, pred, server = served
    loaded = load_encoder("vit_test", pretrained=True)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "tiny.pt"
    assert cached.is_file() and not list(cached.parent.glob("*.part"))
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, enc.state_dict()[k])
    server.shutdown()  # the cache serves the next call
    assert load_predictor("vit_test", pretrained=True) is not None
    assert load_encoder("tiny_hub", pretrained=True) is not None  # the hub entry name works too


def test_a_released_probe_loads_by_name(tmp_path, monkeypatch):
    from vjepa2.config import ClassifierConfig
    from vjepa2.models import AttentiveClassifier
    from vjepa2.weights import load_classifier, save_official

    root = tmp_path / "www" / "evals"
    root.mkdir(parents=True)
    torch.manual_seed(0)
    probe = AttentiveClassifier(ClassifierConfig(embed_dim=48, num_heads=16, depth=2, num_classes=5))
    save_official(root / "tiny-probe.pt", classifiers=[probe])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("VJEPA2_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    rel = hub.Release("tiny-probe", "evals/tiny-probe.pt", "tiny-probe", None, "probe", "vit_test", kind="probe")
    monkeypatch.setattr(hub, "RELEASES", (*hub.RELEASES, rel))
    import vjepa2.weights.load as load_module

    monkeypatch.setattr(load_module, "RELEASES", hub.RELEASES)
    try:
        loaded = load_classifier("tiny-probe")
    finally:
        server.shutdown()
    assert (
        loaded.cfg.heads == (5,) and (tmp_path / "torch" / "hub" / "checkpoints" / "evals" / "tiny-probe.pt").is_file()
    )


def test_damaged_cache_is_reported(served, tmp_path):
    load_encoder("vit_test", pretrained=True)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "tiny.pt"
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="damaged checkpoint.*delete it"):
        load_encoder("vit_test", pretrained=True)


def test_no_network_is_a_clear_error_not_a_hang(served, monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("VJEPA2_WEIGHTS_URL", f"http://127.0.0.1:{port}/")
    tic = time.monotonic()
    with pytest.raises(WeightsError, match=rf"cannot download http://127.0.0.1:{port}/tiny.pt into .*checkpoints"):
        load_encoder("vit_test", pretrained=True)
    assert time.monotonic() - tic < 30


def test_unknown_names_list_the_releases():
    with pytest.raises(WeightsError, match="released: .*vit_large"):
        load_encoder("vit_small", pretrained=True)


def test_every_release_names_a_preset_and_a_url():
    from vjepa2.config import AC_PREDICTOR_PRESETS, ENCODER_PRESETS

    for rel in hub.RELEASES:
        if rel.kind == "probe":
            assert rel.encoder in ENCODER_PRESETS and rel.file.startswith("evals/")
        else:
            assert rel.preset in ENCODER_PRESETS or rel.preset in AC_PREDICTOR_PRESETS
        assert rel.url.startswith("https://dl.fbaipublicfiles.com/vjepa2/") and rel.url.endswith(".pt")


def test_preset_is_read_from_the_weights(tmp_path):
    torch.manual_seed(0)
    enc = load_encoder("vit_test")
    folder = save_hf(tmp_path / "hf", encoder=enc)
    from_hf = load_encoder(None, folder)
    assert from_hf.cfg.embed_dim == 48 and from_hf.cfg.depth == 2
    torch.save({"target_encoder": enc.state_dict()}, tmp_path / "enc.pt")
    from_pt = load_encoder(None, tmp_path / "enc.pt")
    assert (from_pt.cfg.embed_dim, from_pt.cfg.depth, from_pt.cfg.patch_size) == (48, 2, 16)
    with pytest.raises(WeightsError, match="needs a preset name, weights, or both"):
        load_encoder(None)


HF_SCRIPT = """
import sys, torch
from vjepa2.weights import load_encoder, WeightsError
enc = load_encoder("hf:facebook/vjepa2-tiny-test")
print("loaded", enc.cfg.embed_dim, enc.cfg.depth)
try:
    load_encoder("hf:facebook/not-cached")
except WeightsError as err:
    print("error:", err)
"""


def test_hugging_face_repository_from_an_offline_cache(tmp_path):
    cache = tmp_path / "hf-cache"
    snapshot = cache / "models--facebook--vjepa2-tiny-test" / "snapshots" / ("a" * 40)
    torch.manual_seed(0)
    save_hf(snapshot, encoder=load_encoder("vit_test"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", HF_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "loaded 48 2" in proc.stdout
    assert (
        "cannot get the Hugging Face repository facebook/not-cached" in proc.stdout
        and "HF_HUB_OFFLINE=1" in proc.stdout
    )


def test_hubconf_has_the_official_entries_and_loads_through_torch_hub(served):
    repo = Path(__file__).resolve().parents[2]
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", repo / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
    official = ["vjepa2_preprocessor", "vjepa2_vit_large", "vjepa2_vit_huge", "vjepa2_vit_giant",
                "vjepa2_vit_giant_384", "vjepa2_ac_vit_giant", "vjepa2_1_vit_base_384", "vjepa2_1_vit_large_384",
                "vjepa2_1_vit_giant_384", "vjepa2_1_vit_gigantic_384"]  # fmt: skip
    assert set(official) <= set(names)
    pre = torch.hub.load(str(repo), "vjepa2_preprocessor", source="local", crop_size=64)
    assert pre(torch.zeros(2, 80, 96, 3, dtype=torch.uint8)).shape == (3, 2, 64, 64)
    with torch.device("meta"):  # the real entry builds the full ViT-L pair (random, no download)
        enc, pred = torch.hub.load(str(repo), "vjepa2_vit_large", source="local", pretrained=False)
    assert enc.cfg.embed_dim == 1024 and pred.cfg.embed_dim == 1024


def test_weights_convert_official_to_hf_and_back(tmp_path, capsys):
    from vjepa2.cli import main
    from vjepa2.weights import save_official

    torch.manual_seed(0)
    enc, pred = load_encoder("vit_test"), load_predictor("vit_test")
    save_official(tmp_path / "a.pt", encoder=enc, predictor=pred)
    assert main(["weights", "convert", str(tmp_path / "a.pt"), str(tmp_path / "hf"), "--model", "vit_test"]) == 0
    assert main(["weights", "convert", str(tmp_path / "hf"), str(tmp_path / "b.pt"), "--model", "vit_test"]) == 0
    back = load_encoder("vit_test", tmp_path / "b.pt")
    for k, v in back.state_dict().items():
        torch.testing.assert_close(v, enc.state_dict()[k])
    assert main(["weights", "convert", str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]) == 2  # never overwrites
    assert main(["weights", "list"]) == 0
    assert "vjepa2_1_vit_large_384" in capsys.readouterr().out
