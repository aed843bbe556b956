"""``vjepa2 probe`` end to end on a tiny image task (class folders, a CSV), then ``vjepa2 classify`` with its probe."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vjepa2.cli import main
from vjepa2.config_io import load_config
from vjepa2.eval.evaluate import ProbeRunConfig

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = [
    "model.encoder=vit_test",
    "data.frames=2",
    "data.resolution=32",
    "probe.depth=2",
    "probe.epochs=15",
    "probe.batch_size=8",
    "probe.lrs=[3e-3]",
    "probe.weight_decays=[0.01]",
    "baselines.knn_k=5",
    "run.progress=false",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def write_images(folder: Path, n: int, seed: int) -> list[Path]:
    """``n`` noisy images per class: dark ones in ``dark/``, bright ones in ``bright/``."""
    rng, paths = np.random.default_rng(seed), []
    for name, base in [("bright", 190), ("dark", 60)]:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = np.clip(base + rng.normal(0, 30, (36, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
            paths.append(folder / name / f"{i}.png")
    return paths


def test_probe_command_learns_a_separable_task_and_classify_uses_its_probe(tmp_path, capsys):
    write_images(tmp_path / "train", 12, seed=0)
    val = write_images(tmp_path / "val", 6, seed=1)
    (tmp_path / "val.csv").write_text("".join(f"{p} {int('dark' in str(p))}\n" for p in val))
    out = tmp_path / "run"
    args = ["probe", *OVERRIDES, f"data.train={tmp_path / 'train'}", f"data.val={tmp_path / 'val.csv'}"]
    assert main([*args, f"run.out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "| attentive (best of 1) |" in printed and "| linear (mean-pooled) |" in printed
    assert "chance 50.0%" in printed
    results = json.loads((out / "results.json").read_text())
    top1 = {r["probe"]: r["top1"] for r in results["rows"]}
    assert min(top1.values()) >= 0.9, top1  # chance 0.5
    assert (out / "classes.txt").read_text().split() == ["bright", "dark"] and (out / "config.yaml").exists()
    cached = sorted((out / "features").glob("*.pt"))
    assert len(cached) == 2
    mtimes = [p.stat().st_mtime_ns for p in cached]
    assert main([*args, f"run.out={out}"]) == 0  # second run: features from the cache
    assert [p.stat().st_mtime_ns for p in sorted((out / "features").glob("*.pt"))] == mtimes
    capsys.readouterr()
    # classify reads the clip settings (2 frames, 32 px) and the encoder preset from probe.pt
    probe = ["--probe", str(out / "probe.pt"), "--labels", str(out / "classes.txt")]
    assert main(["classify", str(val[-1]), *probe, "--top", "2"]) == 0
    assert re.findall(r"^\d+\. (\S+)", capsys.readouterr().out, flags=re.M)[0] == "dark"


def test_probe_config_errors_name_the_key(tmp_path, capsys):
    assert main(["probe", "model.encoder=vit_test", f"run.out={tmp_path}"]) == 2
    assert "data.train" in capsys.readouterr().err
    assert main(["probe", "data.tarin=x"]) == 2
    assert "data.tarin" in capsys.readouterr().err
    assert main(["probe", "data.train=nowhere.csv", "data.val=nowhere.csv", "model.encoder=vit_test"]) == 2
    assert "nowhere.csv" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((REPO / "configs/probe").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_probe_configs_parse(path):
    cfg = load_config(ProbeRunConfig, path)
    assert cfg.data.train and cfg.data.val
