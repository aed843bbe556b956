import os
import warnings

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vjepa2.data.datasets import (
    ClipItem,
    SkippedFileWarning,
    VideoClipDataset,
    collate_clips,
    list_samples,
    make_loader,
    read_csv_list,
)
from vjepa2.data.sampler import DrawKey
from vjepa2.data.transforms import AugmentConfig, VideoAugment

CROP, FRAMES = 16, 4


def _write_video(path, shade, frames=24, h=48, w=64, fps=12):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, : w // 2] = shade
            img[:, w // 2 :] = 8 * i  # brightness moves with time, so clip positions differ
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """good/{a.mp4, sub/b.mp4, c.png, notes.txt} and bad/{corrupt.mp4, empty.mp4}."""
    root = tmp_path_factory.mktemp("data")
    (root / "good" / "sub").mkdir(parents=True)
    (root / "bad").mkdir()
    _write_video(root / "good" / "a.mp4", shade=200)
    _write_video(root / "good" / "sub" / "b.mp4", shade=50)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / "good/c.png")
    (root / "good" / "notes.txt").write_text("not media")
    (root / "bad" / "corrupt.mp4").write_bytes(np.random.default_rng(1).bytes(2048))
    (root / "bad" / "empty.mp4").write_bytes(b"")
    return root


def _dataset(sources, **kw):
    kw.setdefault("transform", VideoAugment(AugmentConfig(crop=CROP)))
    return VideoClipDataset(sources, frames=FRAMES, **kw)


# ---------------------------------------------------------------------------------------------------- sources


def test_csv_space_delimited_with_labels_and_relative_paths(data):
    csv = data / "list.csv"
    csv.write_text("good/a.mp4 3\n/abs/x.mp4 7\n\ngood/c.png\n")
    assert read_csv_list(csv) == [(str(data / "good/a.mp4"), 3), ("/abs/x.mp4", 7), (str(data / "good/c.png"), -1)]


def test_csv_double_colon_fallback(data):
    csv = data / "captions.csv"
    csv.write_text("good/a b.mp4::a caption, with spaces\ngood/c.png::5\n")
    with pytest.warns(UserWarning, match="non-integer"):
        assert read_csv_list(csv) == [(str(data / "good/a b.mp4"), -1), (str(data / "good/c.png"), 5)]
    (data / "spaces.csv").write_text("a b.mp4 1\n")
    with pytest.raises(ValueError, match="spaces.csv:1"):
        read_csv_list(data / "spaces.csv")


def test_folder_and_glob_discovery(data):
    good = data / "good"
    expected = [str(good / "a.mp4"), str(good / "c.png"), str(good / "sub/b.mp4")]
    assert [p for p, _ in list_samples(good)] == expected  # recursive, sorted, notes.txt ignored
    assert all(label == -1 for _, label in list_samples(good))
    assert [p for p, _ in list_samples(f"{good}/**/*.mp4")] == [expected[0], expected[2]]
    assert list_samples(good / "c.png") == [(expected[1], -1)]
    with pytest.raises(FileNotFoundError):
        list_samples(data / "missing.csv")
    with pytest.raises(FileNotFoundError):
        list_samples(data / "nowhere")


def test_empty_dataset_raises(data):
    (data / "empty_dir").mkdir(exist_ok=True)
    (data / "empty.csv").write_text("\n")
    for source in (data / "empty_dir", data / "empty.csv", f"{data}/good/*.avi"):
        with pytest.raises(ValueError, match="has no video or image files"):
            _dataset([data / "good", source])
    with pytest.raises(ValueError, match="no data sources"):
        _dataset([])


def test_mixture_sample_weights(data):
    ds = _dataset([data / "good", data / "good/c.png"], weights=[0.25, 0.75])
    np.testing.assert_allclose(ds.sample_weights, [0.25 / 3] * 3 + [0.75])
    np.testing.assert_allclose(_dataset([data / "good", data / "good/c.png"]).sample_weights, [0.25] * 4)
    with pytest.raises(ValueError, match="weights"):
        _dataset([data / "good"], weights=[0.5, 0.5])


# ---------------------------------------------------------------------------------------------------- items


def test_video_and_image_items(data):
    ds = _dataset(data / "good")
    video, image = ds[0], ds[1]
    assert video.clip.shape == image.clip.shape == (3, FRAMES, CROP, CROP)
    assert (video.label, video.index, video.failures) == (-1, 0, 0)
    assert not torch.equal(video.clip[:, 0], video.clip[:, -1])  # a real clip moves
    assert all(torch.equal(image.clip[:, 0], image.clip[:, t]) for t in range(FRAMES))  # an image repeats


def test_items_are_determined_by_seed_epoch_position_index(data):
    a, b = _dataset(data / "good", seed=3), _dataset(data / "good", seed=3)
    key = DrawKey(index=2, epoch=1, position=5)
    assert torch.equal(a[key].clip, b[key].clip)
    assert torch.equal(a[2].clip, a[DrawKey(2, 0, 2)].clip)
    for other in (DrawKey(2, 2, 5), DrawKey(2, 1, 6)):
        assert not torch.equal(a[key].clip, a[other].clip)
    assert not torch.equal(a[key].clip, _dataset(data / "good", seed=4)[key].clip)


def test_unreadable_file_is_replaced_warned_and_counted(data):
    ds = _dataset([data / "good", data / "bad"])  # indices 3, 4: corrupt.mp4, empty.mp4
    for bad, name in ((3, "corrupt.mp4"), (4, "empty.mp4")):
        with pytest.warns(SkippedFileWarning, match=name):
            item = ds[bad]
        assert item.failures >= 1 and item.clip is not None and item.index != bad


def test_collate_refills_failed_items_and_sums_failures():
    clips = torch.randn(2, 3, FRAMES, CROP, CROP)
    items = [ClipItem(clips[0], 1, 0, 2), ClipItem(None, -1, 5, 3), ClipItem(clips[1], -1, 7, 0)]
    batch = collate_clips(items)
    assert batch.clips.shape == (3, 3, FRAMES, CROP, CROP) and batch.num_skipped == 5  # B stays 3
    assert batch.labels.tolist() == [1, -1, 1] and batch.indices.tolist() == [0, 7, 0]
    assert torch.equal(batch.clips[2], clips[0])
    empty = collate_clips([ClipItem(None, -1, 5, 3)])
    assert empty.indices.numel() == 0 and empty.num_skipped == 3


# ---------------------------------------------------------------------------------------------------- loader


def _epochs(loader, epochs=(0, 1)):
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        out.append(list(loader))
    return out


def test_loader_is_identical_with_0_and_2_workers(data):
    ds = _dataset(data / "good", seed=7)
    serial = _epochs(make_loader(ds, batch_size=2, num_workers=0, samples_per_epoch=6))
    parallel = _epochs(make_loader(ds, batch_size=2, num_workers=2, samples_per_epoch=6))  # persistent workers
    assert [len(e) for e in serial] == [3, 3]
    for s_epoch, p_epoch in zip(serial, parallel, strict=True):
        for s, p in zip(s_epoch, p_epoch, strict=True):
            assert s.clips.shape == (2, 3, FRAMES, CROP, CROP) and s.num_skipped == p.num_skipped == 0
            assert torch.equal(s.clips, p.clips) and torch.equal(s.indices, p.indices)
    assert not torch.equal(serial[0][0].clips, serial[1][0].clips)


def test_loader_resumes_mid_epoch(data):
    loader = make_loader(_dataset(data / "good"), batch_size=2, num_workers=0, samples_per_epoch=8)
    loader.set_epoch(2)
    full = list(loader)
    loader.set_epoch(2, start_batch=1)
    assert len(loader) == 3
    assert all(torch.equal(a.clips, b.clips) for a, b in zip(list(loader), full[1:], strict=True))


@pytest.mark.parametrize("max_retries", [0, 10])
def test_loader_counts_skipped_files(data, max_retries):
    ds = _dataset([data / "good", data / "bad"], weights=[0.7, 0.3], max_retries=max_retries)
    loader = make_loader(ds, batch_size=4, num_workers=0, samples_per_epoch=16)
    bad = loader.sampler.global_draw().reshape(4, 4) >= 3  # indices 3, 4 are corrupt.mp4, empty.mp4
    assert bad.any() and not bad.all(axis=1).any()  # some bad draws, no all-bad batch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(loader)
    skipped = [b.num_skipped for b in batches]
    if max_retries == 0:  # no replacement: a bad draw is one skipped file and its slot is refilled
        assert skipped == bad.sum(axis=1).tolist()
    assert sum(skipped) >= bad.sum()
    assert all(b.clips.shape[0] == 4 and (b.indices < 3).all() for b in batches)  # B fixed, only good samples
    names = " ".join(str(w.message) for w in caught if issubclass(w.category, SkippedFileWarning))
    assert all(ds.path(i) in names for i in loader.sampler.global_draw() if i >= 3)  # every bad file is named


def test_all_bad_data_raises(data):
    ds = _dataset(data / "bad", max_retries=2)
    loader = make_loader(ds, batch_size=2, num_workers=0, samples_per_epoch=16, max_empty_batches=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        with pytest.raises(RuntimeError, match="3 batches in a row had no readable clip"):
            list(loader)


def test_argument_validation(data):
    with pytest.raises(ValueError, match="exactly one of fps and frame_step"):
        _dataset(data / "good", frame_step=2)
    assert os.path.isfile(data / "good/a.mp4")
    assert _dataset(data / "good", fps=None, frame_step=2)[0].clip.shape == (3, FRAMES, CROP, CROP)
