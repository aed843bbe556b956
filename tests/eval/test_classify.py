"""``vjepa2 classify`` on official-layout checkpoints (random weights, tiny preset) against a direct computation."""

import json
import re

import pytest
import torch

from vjepa2.cli import main
from vjepa2.config import ClassifierConfig, encoder_config
from vjepa2.data import preprocess, read_video
from vjepa2.data.synthetic import WorldConfig, write_videos
from vjepa2.eval.classify import read_labels
from vjepa2.models import AttentiveClassifier, VisionTransformer
from vjepa2.weights import save_official

TINY = ["--model", "vit_test", "--frames", "4", "--resolution", "64"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classify")
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("vit_test"))
    probe = AttentiveClassifier(ClassifierConfig(48, 16, depth=2, num_classes=7))
    ek100 = AttentiveClassifier(ClassifierConfig(48, 16, depth=2, num_classes=(3, 4, 6)))
    write_videos(tmp, 1, config=WorldConfig(frames=8, resolution=64))
    video = next((tmp / "videos").glob("*.mp4"))
    return {
        "video": str(video),
        "encoder": str(save_official(tmp / "enc.pt", encoder=encoder)),
        "probe": str(save_official(tmp / "probe.pt", classifiers=[probe])),
        "ek100": str(save_official(tmp / "ek100.pt", classifiers=[ek100])),
        "models": (encoder.eval(), probe.eval()),
        "tmp": tmp,
    }


def printed_classes(text: str) -> list[str]:
    return re.findall(r"^\d+\. (\S+)", text, flags=re.M)


def test_classify_prints_the_top5_of_the_probe(files, capsys):
    names = [f"class_{i}" for i in range(7)]
    (files["tmp"] / "labels.txt").write_text("\n".join(names) + "\n")
    args = ["classify", files["video"], "--encoder-weights", files["encoder"], "--probe", files["probe"]]
    assert main([*args, "--labels", str(files["tmp"] / "labels.txt"), *TINY]) == 0
    encoder, probe = files["models"]
    with torch.no_grad():
        video = preprocess(read_video(files["video"], frames=4, fps=4), 64)[None]
        probs = probe(encoder(video)).softmax(-1)[0]
    expected = [names[i] for i in probs.topk(5).indices.tolist()]
    out = capsys.readouterr().out
    assert printed_classes(out) == expected
    assert f"({100 * probs.max().item():.1f}%" in out


def test_classify_multi_head_probe_and_errors(files, capsys):
    args = ["classify", files["video"], "--encoder-weights", files["encoder"], *TINY]
    assert main([*args, "--probe", files["ek100"], "--views", "2"]) == 0
    out = capsys.readouterr().out
    assert "verb:" in out and "noun:" in out and "action:" in out and len(printed_classes(out)) == 3 + 4 + 5
    assert main(["classify", files["video"], "--model", "vit_tiny", "--probe", files["probe"]]) == 2
    err = capsys.readouterr().err
    assert "RANDOM" in err and "48-wide" in err and "vit_tiny" in err  # a 192-wide encoder
    assert main([*args, "--probe", str(files["tmp"] / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_read_labels_formats(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"Pushing something": "1", "Holding something": "0"}))  # SSv2 style
    (tmp_path / "b.json").write_text(json.dumps(["x", "y"]))
    (tmp_path / "c.txt").write_text("walk\n\nrun\n")
    assert read_labels(tmp_path / "a.json") == ["Holding something", "Pushing something"]
    assert read_labels(tmp_path / "b.json") == ["x", "y"]
    assert read_labels(tmp_path / "c.txt") == ["walk", "run"]
