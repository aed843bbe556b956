import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from vjepa2.data.synthetic import (
    COLOURS,
    NEXT_EVENTS,
    SyntheticVideoDataset,
    SyntheticWorld,
    WorldConfig,
    split_seeds,
    to_model_layout,
    write_videos,
)

WORLD = SyntheticWorld(WorldConfig())


def test_clip_shape_dtype_and_determinism():
    frames, labels = WORLD.render_clip(3)
    assert frames.shape == (16, 64, 64, 3) and frames.dtype == np.uint8
    again, labels2 = SyntheticWorld(WorldConfig()).render_clip(3)
    assert np.array_equal(frames, again) and labels == labels2
    other, _ = WORLD.render_clip(4)
    assert not np.array_equal(frames, other)
    assert len(set(labels) & {"direction", "moved", "count", "next_event", "appearance"}) == 5


def test_label_ranges():
    cfg = WORLD.cfg
    for seed in range(100):
        lab = WORLD.scene(seed).labels
        assert 0 <= lab["direction"] < cfg.num_directions
        assert cfg.min_objects <= lab["count"] <= cfg.max_objects
        assert 0 <= lab["next_event"] < len(NEXT_EVENTS)
        assert 0 <= lab["appearance"] < 2 * len(COLOURS)
        assert lab["moved"] == (lab["colour"] if lab["one_mover"] else -1)


def _angle_class(dx: float, dy: float, n: int) -> int:
    angle = math.atan2(-dy, dx)  # screen y points down
    return round(angle / (2 * math.pi / n)) % n


@pytest.mark.parametrize("num_directions", [4, 8])
def test_direction_matches_rendered_centroid(num_directions):
    """One object, no gravity/occluder: the centroid of non-background pixels moves in the labelled direction."""
    cfg = WorldConfig(min_objects=1, max_objects=1, gravity_prob=0.0, occluder_prob=0.0, num_directions=num_directions)
    world, checked = SyntheticWorld(cfg), 0
    for seed in range(40):
        scene = world.scene(seed)
        quiet = ~scene.wall_hits[1 : cfg.frames].any(axis=1)  # steps into frames 1.. with no bounce
        last = int(np.argmin(quiet)) if not quiet.all() else cfg.frames - 1  # last frame before the first bounce
        if last < 2:
            continue
        frames = world.render(scene).astype(np.float32)
        centroids = []
        for t in (0, last):
            diff = np.abs(frames[t] - scene.background * 255).sum(-1) > 60  # object pixels
            ys, xs = np.nonzero(diff)
            centroids.append((xs.mean(), ys.mean()))
        dx, dy = centroids[1][0] - centroids[0][0], centroids[1][1] - centroids[0][1]
        assert _angle_class(dx, dy, num_directions) == scene.labels["direction"], seed
        checked += 1
    assert checked >= 15


def test_direction_balanced():
    counts = Counter(WORLD.scene(seed).labels["direction"] for seed in range(400))
    assert len(counts) == 8 and min(counts.values()) >= 30 and max(counts.values()) <= 70  # 50 expected


def test_count_and_one_mover():
    for seed in range(60):
        scene = WORLD.scene(seed)
        n = scene.labels["count"]
        assert len(scene.radius) == n == scene.positions.shape[1] and len(set(scene.colour.tolist())) == n
        moved = np.linalg.norm(scene.positions[-1] - scene.positions[0], axis=-1) > 0
        assert moved[0]
        if scene.labels["one_mover"]:
            assert not moved[1:].any()  # static objects are immovable


def test_objects_stay_in_frame_and_bounce():
    cfg = WorldConfig(max_objects=4, speed=(3.0, 4.0), frames=32, radius=(6.0, 10.0))
    world, bounced = SyntheticWorld(cfg), 0
    for seed in range(50):
        scene = world.scene(seed)
        r = scene.radius[None, :, None]
        assert np.all(scene.positions >= r - 1e-6) and np.all(scene.positions <= cfg.resolution - r + 1e-6)
        bounced += int(scene.wall_hits.any())
    assert bounced > 25


def test_collisions_conserve_momentum_and_energy():
    cfg = WorldConfig(min_objects=2, max_objects=2, one_mover_prob=0.0, gravity_prob=0.0)
    world, checked = SyntheticWorld(cfg), 0
    for seed in range(200):
        scene = world.scene(seed)
        s = np.flatnonzero(scene.collisions[:, 0])
        if not len(s) or scene.wall_hits[s[0] - 1 : s[0] + 2].any() or s[0] < 2 or s[0] + 2 > len(scene.positions):
            continue
        vel = np.diff(scene.positions, axis=0)  # [S-1, n, 2]
        before, after = vel[s[0] - 2], vel[s[0]]  # steps clear of the collision step (position correction)
        m = scene.radius[:, None] ** 2
        assert np.allclose((m * before).sum(0), (m * after).sum(0), atol=1e-6)
        assert np.isclose((m * before**2).sum(), (m * after**2).sum(), rtol=1e-6)
        checked += 1
    assert checked >= 3


def test_next_event_matches_simulation():
    cfg = WORLD.cfg
    seen = Counter()
    for seed in range(200):
        scene = WORLD.scene(seed)
        future = slice(cfg.frames, cfg.frames + cfg.event_horizon)
        event = NEXT_EVENTS[scene.labels["next_event"]]
        seen[event] += 1
        if event == "none":
            assert not scene.wall_hits[future, 0].any() and not scene.collisions[future, 0].any()
        else:
            assert (scene.wall_hits[future, 0] | scene.collisions[future, 0]).any()
    assert len(seen) == 3


def test_gravity_accelerates_downwards():
    cfg = WorldConfig(min_objects=1, max_objects=1, gravity_prob=1.0, collisions=False)
    scene = SyntheticWorld(cfg).scene(0)
    vy = np.diff(scene.positions[:, 0, 1])
    quiet = ~(scene.wall_hits[1:-1, 0] | scene.wall_hits[2:, 0])  # second differences clear of bounces
    assert quiet.sum() > 5
    assert np.allclose(np.diff(vy)[quiet], cfg.gravity)


def test_dataset_layout_and_splits():
    ds = SyntheticVideoDataset.split("val", 4)
    video, labels = ds[0]
    assert len(ds) == 4 and video.shape == (3, 16, 64, 64) and video.dtype == torch.float32
    assert -2.5 < float(video.min()) and float(video.max()) < 2.7
    raw, _ = SyntheticVideoDataset(seeds=[ds.seeds[0]], normalize=False)[0]
    assert raw.dtype == torch.uint8 and torch.equal(raw, to_model_layout(WORLD.render_clip(ds.seeds[0])[0], False))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 3, 16, 64, 64) and batch[1]["direction"].shape == (2,)
    train, val, test = (set(split_seeds(s, 1000)) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    with pytest.raises(ValueError):
        split_seeds("val", 10**8)


def test_write_videos_readable(tmp_path):
    av = pytest.importorskip("av")
    cfg = WorldConfig(frames=8)
    csv_path = write_videos(tmp_path, 2, seed0=5, config=cfg)
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 2
    labels = json.loads((tmp_path / "labels.json").read_text())
    for line, seed in zip(lines, (5, 6), strict=True):
        path, label = line.split(" ")
        assert int(label) == labels[path]["direction"] == SyntheticWorld(cfg).scene(seed).labels["direction"]
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 8 and frames[0].shape == (64, 64, 3)
        ref = SyntheticWorld(cfg).render_clip(seed)[0].astype(np.float32)
        assert np.abs(np.stack(frames).astype(np.float32) - ref).mean() < 8  # lossy codec, chroma subsampled
