"""The paper's probe protocol: the official configs, training augmentation, on-the-fly vs cached features, EK100."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vjepa2.config_io import load_config
from vjepa2.data.randaugment import OPS, ProbeAugmentConfig, apply_op, probe_augment, random_erase
from vjepa2.errors import UserError
from vjepa2.eval.data import ClipSpec, SyntheticSource
from vjepa2.eval.epic_kitchens import COLUMNS, EK100Source, anticipation_indices, parse_timestamp, read_annotations
from vjepa2.eval.evaluate import ProbeRunConfig, evaluate
from vjepa2.eval.features import encode_source, load_frozen_encoder, stream_batches

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")

# (frames, frame_step or fps, segments, views, resolution) of the official configs (docs/probe-protocol.md)
OFFICIAL = {
    "vitl/ssv2": (16, 4, 2, 3, 256), "vitg-384/ssv2": (64, 2, 2, 3, 384),
    "vitl/diving48": (32, 2, 4, 3, 256), "vitg-384/diving48": (32, 2, 4, 3, 384),
    "vitl/jester": (32, 2, 4, 3, 256), "vitg-384/jester": (32, 2, 4, 3, 384),
    "vitl/k400": (16, 4, 8, 3, 256), "vitg-384/k400": (16, 4, 8, 3, 384),
    "vitl/coin": (16, 4, 8, 3, 256), "vitg-384/coin": (16, 4, 8, 3, 384),
    "vitl/in1k": (16, None, 1, 1, 256), "vitg-384/in1k": (18, None, 1, 1, 384),
    "vitl/ek100": (32, None, 1, 1, 256), "vitg-384/ek100": (32, None, 1, 1, 384),
}  # fmt: skip


def test_every_eval_config_loads_with_the_official_clip_settings():
    found = {str(p.relative_to(REPO / "configs/eval"))[:-5]: p for p in (REPO / "configs/eval").glob("*/*.yaml")}
    assert set(found) == set(OFFICIAL)
    for name, path in found.items():
        cfg = load_config(ProbeRunConfig, path)
        d = cfg.data
        assert (d.frames, d.frame_step, d.segments, d.views, d.resolution) == OFFICIAL[name], name
        assert cfg.model.encoder == ("vit_large" if name.startswith("vitl") else "vit_giant_384")
        assert cfg.probe.depth == 4 and cfg.probe.num_heads == 16
        if name.endswith("ek100"):
            assert d.anticipation == 1.0 and d.fps == 8.0 and cfg.model.predictor and len(cfg.probe.grid) == 20
        elif name.endswith(("diving48", "jester")):
            assert len(cfg.model.out_layers) == 4 and cfg.probe.epochs == 100
        else:
            assert len(cfg.probe.grid) == 20 and cfg.probe.epochs == 20 and cfg.augment.enabled


def test_augment_config_errors():
    with pytest.raises(UserError, match="erase_prob"):
        ProbeAugmentConfig(erase_prob=2.0)
    with pytest.raises(UserError, match="augment.scale"):
        ProbeAugmentConfig(scale=(0.5, 0.1))


def test_augmentation_changes_the_inputs_and_is_seeded():
    rng = np.random.default_rng(0)
    clip = torch.from_numpy(rng.integers(0, 256, (4, 40, 48, 3), dtype=np.uint8))
    cfg = ProbeAugmentConfig(enabled=True)
    a = probe_augment(clip, 32, cfg, np.random.default_rng(1))
    b = probe_augment(clip, 32, cfg, np.random.default_rng(1))
    c = probe_augment(clip, 32, cfg, np.random.default_rng(2))
    assert a.shape == (3, 4, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    x = clip.permute(0, 3, 1, 2).float()
    for op in OPS:  # every op keeps the range and the shape; most change the clip at level 10
        y = apply_op(x, op, 10.0, np.random.default_rng(0))
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255, op
        assert op in ("auto_contrast", "equalize") or not torch.equal(y, x), op
    z = torch.zeros(3, 2, 16, 16)
    erased = random_erase(z.clone(), np.random.default_rng(0), prob=1.0)
    box = erased != 0
    assert box.any() and torch.equal(box[:, 0], box[:, 1])  # one box for all frames ("cube")


def test_uncached_features_equal_the_cached_ones_without_augmentation(tmp_path):
    encoder = load_frozen_encoder("vit_test", None)
    spec = ClipSpec(frames=4, resolution=32, segments=2, views=1, fps=4.0)
    source = SyntheticSource("direction", "val", 6, resolution=64, frames=8)
    cached = encode_source(encoder, source, spec, batch_size=2)  # [6, 1, tokens, D]
    off = ProbeAugmentConfig(enabled=False)
    streamed = list(stream_batches(encoder, source, spec, off, batch_size=4, encode_batch=2, shuffle=False))
    assert (
        len(streamed) == 1
        and torch.equal(streamed[0][0], cached[:4])
        and torch.equal(streamed[0][1], source.labels[:4])
    )
    on = ProbeAugmentConfig(enabled=True)
    aug = next(stream_batches(encoder, source, spec, on, batch_size=4, encode_batch=2, shuffle=False))[0]
    assert aug.shape == cached[:4].shape and not torch.equal(aug, cached[:4])


def test_probe_run_with_augmentation_trains_on_the_fly(tmp_path):
    cfg = load_config(ProbeRunConfig, None, [
        "model.encoder=vit_test", "data.train=synthetic:direction:val:8", "data.val=synthetic:direction:test:4",
        "data.frames=4", "data.resolution=64", "data.batch_size=4", "probe.depth=1", "probe.epochs=2",
        "probe.batch_size=4", "probe.lrs=[1e-3]", "probe.weight_decays=[0.01]", "augment.enabled=true",
        f"run.out={tmp_path / 'run'}", "run.progress=false", "run.device=cpu",
    ])  # fmt: skip
    results = evaluate(cfg)
    assert len(results["rows"]) == 1 and 0 <= results["rows"][0]["top1"] <= 1


# ------------------------------------------------------------------------------------------------ EK100 fixtures

FPS = 20  # fixture video rate: 8 fps sampling takes every int(20 / 8) = 2nd frame


def write_video(path: Path, n: int = 60) -> None:
    """A tiny mp4 whose frame ``i`` has red channel ``4 * i``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv444p"
        for i in range(n):
            frame = np.zeros((32, 48, 3), np.uint8)
            frame[..., 0] = 4 * i
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


def write_csv(path: Path, rows: list[tuple]) -> Path:
    """EK100 annotation rows (video, start_frame, verb_class, noun_class) in the official column layout."""
    lines = [",".join(COLUMNS)]
    for k, (vid, start, verb, noun) in enumerate(rows):
        t = f"00:00:{start / FPS:05.2f}"
        lines.append(f"{vid}_{k},{vid.split('_')[0]},{vid},{t},{t},{t},{start},{start + 10},open door,open,{verb},"
                     f"door,{noun},\"['door']\",[{noun}]")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def ek100(tmp_path_factory):
    root = tmp_path_factory.mktemp("ek100")
    for vid in ("P01_01", "P02_03"):
        write_video(root / "videos" / vid.split("_")[0] / "videos" / f"{vid}.MP4")
    train = write_csv(root / "EPIC_100_train.csv", [("P01_01", 40, 3, 7), ("P01_01", 50, 5, 7), ("P02_03", 45, 3, 9)])
    val = write_csv(
        root / "EPIC_100_validation.csv", [("P02_03", 50, 3, 9), ("P01_01", 30, 5, 9), ("P01_01", 55, 3, 7)]
    )
    return root, train, val


def test_ek100_annotations_classes_and_clip_timing(ek100):
    root, train_csv, val_csv = ek100
    assert parse_timestamp("00:01:02.50") == 62.5
    acts = read_annotations(train_csv)
    assert [(a.video_id, a.start_frame, a.verb_class, a.noun_class) for a in acts][0] == ("P01_01", 40, 3, 7)
    # the clip ends 1 s before the action: 32 frames every 2nd frame, before frame 40 - 20 = 20, padded with frame 0
    idx = anticipation_indices(40, FPS, frames=32, fps=8.0, anticipation=1.0)
    assert idx[-1] == 18 and (np.diff(idx[idx > 0]) == 2).all() and idx[0] == 0 and len(idx) == 32
    train = EK100Source(train_csv, root / "videos")
    val = EK100Source(val_csv, root / "videos", train.class_map)
    assert train.class_map.sizes == (2, 2, 3)  # verbs {3, 5}, nouns {7, 9}, actions (3,7) (3,9) (5,7)
    assert len(val) == 2 and val.labels.tolist() == [[0, 1, 1], [0, 0, 0]]  # (5, 9) never occurs in training
    clip = train.segments(0, ClipSpec(frames=8, fps=8.0, resolution=32))
    assert clip.shape == (1, 8, 32, 48, 3)
    reds = [round(float(f[..., 0].float().mean()) / 4) for f in clip[0]]
    assert reds == anticipation_indices(40, FPS, frames=8, fps=8.0).tolist() == [4, 6, 8, 10, 12, 14, 16, 18]


def test_ek100_bad_input_names_the_file_and_column(tmp_path, ek100):
    root, train_csv, _ = ek100
    bad = tmp_path / "bad.csv"
    bad.write_text(train_csv.read_text().replace(",3,door,", ",x,door,", 1).replace("open,3,", "open,x,", 1))
    with pytest.raises(UserError, match=r"bad\.csv, line 2, column verb_class"):
        read_annotations(bad)
    (tmp_path / "cols.csv").write_text("video_id,start_frame\nP01_01,3\n")
    with pytest.raises(UserError, match="cols.csv: missing column.*participant_id"):
        read_annotations(tmp_path / "cols.csv")
    with pytest.raises(UserError, match="no action with a video"):
        EK100Source(train_csv, tmp_path / "nowhere")


def test_ek100_probe_run_reports_recall_at_5(tmp_path, ek100):
    root, train_csv, val_csv = ek100
    cfg = load_config(ProbeRunConfig, None, [
        "model.encoder=vit_test", "model.predictor=true", f"data.train={train_csv}", f"data.val={val_csv}",
        f"data.video_root={root / 'videos'}", "data.anticipation=1.0", "data.frames=4", "data.fps=8",
        "data.resolution=32", "data.batch_size=3", "probe.depth=1", "probe.epochs=2", "probe.batch_size=3",
        "probe.lrs=[1e-3]", "probe.weight_decays=[0.01]", f"run.out={tmp_path / 'run'}", "run.progress=false",
        "run.device=cpu",
    ])  # fmt: skip
    results = evaluate(cfg)
    assert results["metric"] == "class-mean recall@5" and [r["probe"] for r in results["rows"]] == [
        "attentive, verb", "attentive, noun", "attentive, action"]  # fmt: skip
    assert all(r["top1"] == 1.0 for r in results["rows"])  # <= 5 classes: every class is in the top 5
