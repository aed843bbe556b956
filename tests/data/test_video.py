"""Frame sampling (official rule) and decoding: the right frames come back, bad files raise VideoReadError."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import vjepa2.data.video as video_module
from vjepa2.data.video import VideoReadError, builtin_clip, frame_step_for, list_media, read_video, sample_indices

N_FRAMES, FPS, H, W = 40, 20, 48, 64  # ceil(20) // 4 -> frame_step 5
CODECS = {".mkv": ("ffv1", "bgr0", {}), ".mp4": ("libx264", "yuv444p", {"qp": "0"})}  # lossless; mkv has no count


def frame_code(i: int) -> int:
    return 6 * i  # frame i has red channel 6 * i


def make_frame(i: int) -> np.ndarray:
    """Red = frame code, plus a blue 8x8 square moving right by one pixel a frame."""
    a = np.zeros((H, W, 3), np.uint8)
    a[..., 0] = frame_code(i)
    a[20:28, i : i + 8, 2] = 255
    return a


def write_clip(path: Path, n: int = N_FRAMES) -> Path:
    codec, pix_fmt, options = CODECS[path.suffix]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for i in range(n):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(make_frame(i), format="rgb24")))
        out.mux(stream.encode())
    return path


def decoded_ids(video: torch.Tensor) -> list[int]:
    """Frame index of each returned frame, read back from the red channel (away from the square)."""
    return [round(float(f[:16, :, 0].float().mean()) / 6) for f in video]


@pytest.fixture(scope="module", params=sorted(CODECS))
def clip(request, tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / f"clip{request.param}")


# ---------------------------------------------------------------- sample_indices


@pytest.mark.parametrize(("video_fps", "step"), [(30, 7), (29.97, 7), (25, 6), (24, 6), (60, 15), (20, 5), (2, 1)])
def test_frame_step_official(video_fps, step):
    assert frame_step_for(video_fps, fps=4) == step


def test_deterministic_clip_from_start():
    idx = sample_indices(300, 30.0, 16)  # step 7, clip_len 112
    np.testing.assert_array_equal(idx, np.clip(np.linspace(0, 112, 16), 0, 111).astype(np.int64))
    np.testing.assert_array_equal(sample_indices(100, 30.0, 4), [0, 9, 18, 27])
    assert idx.dtype == np.int64


def test_frame_step_overrides_fps():
    np.testing.assert_array_equal(sample_indices(100, 30.0, 4, frame_step=2), [0, 2, 5, 7])
    np.testing.assert_array_equal(sample_indices(100, 30.0, 4, fps=None, frame_step=2), [0, 2, 5, 7])


@pytest.mark.parametrize(
    ("n", "expected"),
    [(20, [0, 19, 19, 19]), (28, [0, 9, 18, 27]), (3, [2, 2, 2, 2]), (15, [0, 14, 14, 14]), (1, [0, 0, 0, 0])],
)
def test_short_video_padding(n, expected):
    # step 7, clip_len 28 >= n: linspace(0, n, n // 7) padded with the last frame
    np.testing.assert_array_equal(sample_indices(n, 30.0, 4), expected)


def test_random_clip_within_bounds():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = sample_indices(300, 30.0, 16, rng=rng)
        assert idx.shape == (16,) and idx.min() >= 0 and idx.max() <= 299
        assert np.all(np.diff(idx) >= 0) and idx[-1] - idx[0] <= 111
        starts.add(int(idx[0]))
    assert min(starts) >= 0 and max(starts) <= 300 - 112 - 1 and len(starts) > 50
    # same seed, same clip
    a = sample_indices(300, 30.0, 16, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, sample_indices(300, 30.0, 16, rng=np.random.default_rng(3)))


@pytest.mark.parametrize(
    "kwargs",
    [{"fps": None, "frame_step": None}, {"frame_step": 0}, {"fps": 0}, {"fps": -1.0}, {"frames": 0}],
)
def test_sampling_argument_errors(kwargs):
    args = {"num_frames_in_video": 100, "video_fps": 30.0, "frames": 4, **kwargs}
    with pytest.raises(ValueError):
        sample_indices(**args)


def test_unknown_video_fps_needs_frame_step():
    with pytest.raises(ValueError, match="frame_step"):
        sample_indices(100, 0.0, 4)
    assert len(sample_indices(100, 0.0, 4, frame_step=3)) == 4


# ---------------------------------------------------------------- read_video


def test_read_video_returns_the_sampled_frames(clip):
    video = read_video(clip, frames=4)
    assert video.shape == (4, H, W, 3) and video.dtype == torch.uint8
    assert decoded_ids(video) == sample_indices(N_FRAMES, FPS, 4).tolist() == [0, 6, 13, 19]
    # the moving square is where frame 13 put it (lossless codec: exact up to colour conversion)
    assert torch.equal(video[2, 20:28, 13:21, 2] > 200, torch.ones(8, 8, dtype=torch.bool))


def test_read_video_frame_step_and_random_clip(clip):
    assert decoded_ids(read_video(clip, frames=5, frame_step=3)) == [0, 3, 7, 11, 14]
    expected = sample_indices(N_FRAMES, FPS, 3, frame_step=2, rng=np.random.default_rng(7)).tolist()
    assert decoded_ids(read_video(clip, frames=3, frame_step=2, rng=np.random.default_rng(7))) == expected


def test_read_video_pads_short_videos(clip):
    video = read_video(clip, frames=16)  # step 5, clip_len 80 > 40 frames
    assert video.shape == (16, H, W, 3)
    assert decoded_ids(video) == [0, 5, 11, 17, 22, 28, 34, 39] + [39] * 8


def test_read_image(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "img.png")
    image = read_video(tmp_path / "img.png", frames=16)
    assert image.shape == (1, H, W, 3) and image.dtype == torch.uint8
    assert torch.equal(image[0], torch.from_numpy(pixels))


def _bad_files(tmp_path: Path, clip: Path) -> list[Path]:
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    data = clip.read_bytes()
    (tmp_path / f"truncated{clip.suffix}").write_bytes(data[: len(data) // 4])
    return [tmp_path / name for name in ("random.mp4", "empty.mp4", "broken.png", "missing.mp4")]


def test_bad_files_raise_video_read_error(tmp_path):
    mp4 = write_clip(tmp_path / "good.mp4")
    for bad in [*_bad_files(tmp_path, mp4), tmp_path / "truncated.mp4", tmp_path]:
        with pytest.raises(VideoReadError) as err:
            read_video(bad, frames=4)
        assert err.value.path == bad and str(bad) in str(err.value)


def test_audio_only_file_has_no_video_stream(tmp_path):
    with av.open(str(tmp_path / "audio.wav"), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(VideoReadError, match="no video stream"):
        read_video(tmp_path / "audio.wav")


def test_header_overstating_the_frame_count(clip, monkeypatch):
    # a container that declares more frames than decode: warn, then sample from the frames that exist
    monkeypatch.setattr(video_module, "_probe", lambda path: (N_FRAMES + 30, float(FPS)))
    with pytest.warns(UserWarning, match="declares 70 frames but only 40 decode"):
        video = read_video(clip, frames=16)
    assert decoded_ids(video) == sample_indices(N_FRAMES, FPS, 16).tolist()


def test_list_media_and_builtin_clip(tmp_path):
    for name in ("b/x.MP4", "a.png", "b/c/y.mkv", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_media(tmp_path)] == ["a.png", "b/c/y.mkv", "b/x.MP4"]
    assert builtin_clip().is_file()
