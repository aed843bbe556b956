"""``vjepa2 embed``: features for the good files, a non-zero exit for the bad ones, and the built-in default."""

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from vjepa2.cli import COMMANDS, main
from vjepa2.data.video import builtin_clip

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "vit_test", "--frames", "4", "--resolution", "64"]


def write_clip(path: Path, n: int = 40) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=20)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            frame = np.full((48, 64, 3), 6 * i, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture
def inputs(tmp_path) -> tuple[str, str, str]:
    video = write_clip(tmp_path / "clip.mp4")
    Image.fromarray(np.full((80, 96, 3), 200, np.uint8)).save(tmp_path / "image.png")
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(2048))
    return str(video), str(tmp_path / "image.png"), str(tmp_path / "corrupt.mp4")


def read_features(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["vjepa2"])


@pytest.mark.parametrize("pool", ["mean", "none"])
def test_embed_good_and_bad_files(inputs, tmp_path, capsys, pool):
    video, image, corrupt = inputs
    out = tmp_path / "out" / "features.safetensors"
    assert main(["embed", video, image, corrupt, *TINY, "--pool", pool, "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "RANDOM" in err and corrupt in err
    feats, meta = read_features(out)
    assert sorted(feats) == sorted([video, image]) and meta["failed"] == [corrupt]
    assert meta["weights"] == "random" and meta["model"] == "vit_test" and meta["pool"] == pool
    assert meta["files"][video]["grid"] == [2, 4, 4] and meta["files"][image]["grid"] == [1, 4, 4]
    if pool == "mean":
        assert feats[video].shape == feats[image].shape == (48,)
    else:
        assert feats[video].shape == (32, 48) and feats[image].shape == (16, 48)


def test_embed_with_weights_matches_python_api(inputs, tmp_path, capsys):
    import torch

    from vjepa2 import load_encoder, preprocess, read_video

    model = load_encoder("vit_test").eval()
    torch.save({"target_encoder": model.state_dict()}, tmp_path / "w.pt")
    out = tmp_path / "f.safetensors"
    assert main(["embed", inputs[0], *TINY, "--weights", str(tmp_path / "w.pt"), "--out", str(out)]) == 0
    assert "RANDOM" not in capsys.readouterr().err
    feats, meta = read_features(out)
    with torch.inference_mode():
        expected = model(preprocess(read_video(inputs[0], frames=4), resolution=64)[None])[0].mean(0)
    torch.testing.assert_close(feats[inputs[0]], expected)
    assert meta["weights"] == str(tmp_path / "w.pt")


def test_embed_folder_recursive(inputs, tmp_path):
    video, image, _ = inputs
    (tmp_path / "sub").mkdir()
    write_clip(tmp_path / "sub" / "more.mkv", n=6)
    (tmp_path / "notes.txt").write_text("not media")
    out = tmp_path / "f.safetensors"
    assert main(["embed", str(tmp_path), *TINY, "--frame-step", "2", "--out", str(out)]) == 1  # corrupt.mp4 fails
    feats, meta = read_features(out)
    assert sorted(feats) == sorted([video, image, str(tmp_path / "sub" / "more.mkv")])
    assert meta["frame_step"] == 2 and "fps" not in meta


def test_embed_default_builtin_clip(tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert main(["embed", "--model", "vit_test", "--frames", "2", "--resolution", "32", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "built-in clip" in captured.err and "1 ok, 0 failed" in captured.out
    feats, _ = read_features(out)
    assert list(feats) == [str(builtin_clip())] and feats[str(builtin_clip())].shape == (48,)


def test_embed_records_which_weights_it_used(tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert main(["embed", "--model", "vjepa2_tiny", "--frames", "2", "--out", str(out)]) == 0
    assert "ship with the package" in capsys.readouterr().err
    assert read_features(out)[1]["weights"] == "packaged"
    assert (
        main(["embed", "--model", "vit_test", "--frames", "2", "--resolution", "32", "--out", str(out), "--overwrite"])
        == 0
    )
    assert read_features(out)[1]["weights"] == "random"


def test_help_and_registry(capsys):
    assert "embed" in COMMANDS
    with pytest.raises(SystemExit) as exit_:
        main(["embed", "--help"])
    assert exit_.value.code == 0 and "--frame-step" in capsys.readouterr().out


def test_python_m_and_light_import():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "vjepa2", "--help"], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and "embed" in run.stdout
    code = "import sys, vjepa2.cli; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.stdout.strip() == "False"


def test_embed_never_overwrites_an_input_or_an_existing_output(inputs, tmp_path, capsys):
    video, image, _ = inputs
    before = Path(video).read_bytes()
    assert main(["embed", video, *TINY, "--out", video]) == 2
    assert Path(video).read_bytes() == before
    assert "is one of the inputs" in capsys.readouterr().err
    out = tmp_path / "f.safetensors"
    out.write_bytes(b"keep me")
    assert main(["embed", video, *TINY, "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep me" and "--overwrite" in capsys.readouterr().err
    assert main(["embed", video, *TINY, "--out", str(out), "--overwrite"]) == 0
    assert sorted(read_features(out)[0]) == [video]


def test_embed_elongated_image_fails_alone_without_a_memory_blow_up(inputs, tmp_path, capsys):
    video, image, _ = inputs
    bomb = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((2, 16384, 3), np.uint8)).save(bomb)  # a few hundred bytes; 8 GB once resized
    out = tmp_path / "f.safetensors"
    assert main(["embed", str(bomb), video, image, *TINY, "--out", str(out)]) == 1
    assert "16384x2 px: resizing the short side" in capsys.readouterr().err
    feats, meta = read_features(out)
    assert sorted(feats) == sorted([video, image]) and meta["failed"] == [str(bomb)]


@pytest.mark.parametrize("resolution", ["0", "8", "60"])
def test_embed_resolution_must_be_a_multiple_of_the_patch(inputs, tmp_path, capsys, resolution):
    video = inputs[0]
    args = ["embed", video, "--model", "vit_test", "--frames", "4", "--resolution", resolution]
    assert main([*args, "--out", str(tmp_path / "f.safetensors")]) == 2
    assert "multiple of the patch size 16" in capsys.readouterr().err


def test_embed_reports_broken_links_and_fifos_in_folders(tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_clip(folder / "good.mp4")
    (folder / "gone.mp4").symlink_to(tmp_path / "missing.mp4")
    os.mkfifo(folder / "pipe.mp4")
    out = tmp_path / "f.safetensors"
    assert main(["embed", str(folder), *TINY, "--out", str(out)]) == 0
    assert "skipped 2 entries that are not readable files" in capsys.readouterr().err
    assert list(read_features(out)[0]) == [str(folder / "good.mp4")]


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    from vjepa2.data.video import read_video

    ramp = (np.arange(64, dtype=np.uint16) * 1040).reshape(8, 8)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    frames = read_video(tmp_path / "deep.png")
    assert frames.dtype.is_floating_point is False and frames.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(frames[0, ..., 0].numpy(), np.round(ramp / 257.0).astype(np.uint8))


def test_collect_rejects_negative_counts(tmp_path, capsys):
    assert main(["collect", "--env", "wall", "--episodes", "-1", "--out", str(tmp_path)]) == 2
    assert "--episodes >= 1" in capsys.readouterr().err


def test_version_and_show_config(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("vjepa2 ")
    extra = {"probe": ["data.train=a.csv", "data.val=b.csv"]}
    for command in ("pretrain", "train-ac", "probe"):
        assert main([command, "--show-config", "run.out=somewhere", *extra.get(command, [])]) == 0
        out = capsys.readouterr().out
        assert "run:" in out and "out: somewhere" in out


def test_library_messages_are_quiet_in_the_api_and_shown_by_the_cli(tmp_path):
    """The library logs through `logging` (no handler of its own); `vjepa2 ...` shows INFO and up on stderr."""
    code = (
        "import logging; from vjepa2.train import rundir; "
        f"open('{tmp_path}/.x.tmp', 'w').close(); rundir.open_run('{tmp_path}'); rundir.release_run('{tmp_path}'); "
        "from vjepa2.cli import show_library_messages; show_library_messages(); "
        f"open('{tmp_path}/.y.tmp', 'w').close(); rundir.open_run('{tmp_path}')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("removed 1 temporary file") == 1  # only after the CLI's handler is set


def test_core_commands_need_no_optional_extra():
    """`pip install vjepa2` without extras: embed, pretrain, probe and weights import no simulator or LM package."""
    code = (
        "import sys; from vjepa2.cli import build_parser; "
        "[build_parser(c) for c in ('embed', 'pretrain', 'probe', 'weights', 'train-ac', 'classify')]; "
        "import vjepa2.commands.embed, vjepa2.commands.pretrain, vjepa2.commands.train_ac; "
        "print(sorted(m for m in ('gymnasium', 'pybullet', 'transformers', 'sklearn') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
