"""A built-in synthetic video world for offline pretraining, probes and tests.

Discs and squares in a few colours move on a mildly textured background with simple physics: straight motion,
elastic bounces off the walls, optional gravity, elastic collisions between objects (static objects are
immovable), depth order and an optional occluder bar in front. Every clip is a pure function of an integer seed.

Labels for probes (all scalars, so clips batch with the default collate):

- ``direction``: motion-direction class of the main object (object 0, always moving), sampled *first* so the
  classes are balanced; class ``c`` is the angle ``c * 360 / num_directions`` degrees counter-clockwise from
  "right" as seen on screen (image ``y`` points down), jittered by at most a quarter sector.
- ``one_mover`` / ``moved``: in one-mover scenes only the main object moves and ``moved`` is its colour index;
  otherwise ``moved`` is -1. Colours are distinct within a scene.
- ``count``: number of objects. ``appearance``: ``shape * len(COLOURS) + colour`` of the main object.
- ``next_event``: what happens to the main object first in the ``event_horizon`` frames after the clip, an index
  into :data:`NEXT_EVENTS` (collisions win ties).

Coordinates are pixels, ``(x, y)`` with ``y`` down, pixel centres at ``i + 0.5``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa2.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vjepa2.errors import UserError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 210, 30),
    "magenta": (210, 50, 200),
    "cyan": (30, 200, 220),
}
SHAPES = ("disc", "square")
NEXT_EVENTS = ("none", "bounce_wall", "collide")
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 10**9), "val": (10**9, 10**7), "test": (2 * 10**9, 10**7)}
_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32) / 255.0
_OCCLUDER_RGB = np.array([0.22, 0.22, 0.25], dtype=np.float32)
_SQUARE_HALF = 0.85  # a square's half-side relative to its (collision) radius
_MEAN, _STD = np.array(IMAGENET_MEAN)[:, None], np.array(IMAGENET_STD)[:, None]
_NORMALISE = ((np.arange(256) / 255.0 - _MEAN) / _STD).astype(np.float32)  # [3, 256]: uint8 value -> model input


@dataclass(frozen=True)
class WorldConfig:
    """Scene distribution and rendering. Lengths in pixels, times in frames.

    Attributes:
        resolution: frame side. frames: frames per clip. fps: nominal frame rate (written into video files).
        min_objects, max_objects: object count range (at most ``len(COLOURS)``).
        radius: object radius range. speed: speed range in pixels per frame.
        num_directions: direction classes (4 or 8 is typical).
        one_mover_prob: probability that only the main object moves (the others are static and immovable).
        gravity_prob: probability that a scene has downward gravity of ``gravity`` px / frame^2.
        occluder_prob: probability of a vertical occluder bar (width ``occluder_width``) in front of all objects.
        collisions: elastic collisions between objects.
        event_horizon: frames after the clip scanned for ``next_event``.
        texture: amplitude of the static background texture. noise: std of per-frame pixel noise (0: none).
        antialias: soft object edges.
    """

    resolution: int = 64
    frames: int = 16
    fps: int = 4
    min_objects: int = 1
    max_objects: int = 3
    radius: tuple[float, float] = (6.0, 12.0)
    speed: tuple[float, float] = (1.0, 4.0)
    num_directions: int = 8
    one_mover_prob: float = 0.5
    gravity_prob: float = 0.25
    gravity: float = 0.15
    occluder_prob: float = 0.3
    occluder_width: tuple[int, int] = (4, 8)
    collisions: bool = True
    event_horizon: int = 4
    texture: float = 0.12
    noise: float = 0.0
    antialias: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= len(COLOURS):
            raise UserError(f"WorldConfig needs 1 <= min_objects <= max_objects <= {len(COLOURS)}")
        if self.num_directions < 2 or self.frames < 2 or self.event_horizon < 1:
            raise UserError("WorldConfig needs num_directions >= 2, frames >= 2 and event_horizon >= 1")
        if not 0 < self.radius[0] <= self.radius[1] < self.resolution / 4:
            raise UserError(f"WorldConfig.radius {self.radius} must lie in (0, resolution / 4)")
        if not 0 <= self.speed[0] <= self.speed[1]:
            raise UserError(f"WorldConfig.speed {self.speed} must be a non-negative range")


@dataclass
class Scene:
    """A simulated scene: per-object properties ``[n]`` and the trajectory over ``frames + event_horizon`` steps."""

    seed: int
    radius: np.ndarray  # [n] float
    colour: np.ndarray  # [n] int, distinct
    shape: np.ndarray  # [n] int into SHAPES
    movable: np.ndarray  # [n] bool; object 0 is always movable
    depth: np.ndarray  # [n] drawing order, back to front
    positions: np.ndarray  # [S, n, 2] (x, y)
    wall_hits: np.ndarray  # [S, n] bool: bounced off a wall on the step into frame s
    collisions: np.ndarray  # [S, n] bool: collided on the step into frame s
    background: np.ndarray  # [H, W, 3] float32 in [0, 1]
    occluder: tuple[int, int] | None  # columns [x0, x1) of the bar
    labels: dict[str, Any] = field(default_factory=dict)


def _sample_layout(rng: np.random.Generator, cfg: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping radii ``[n]`` and centres ``[n, 2]`` (objects that do not fit are dropped)."""
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    radii, centres = [], []
    for r in rng.uniform(*cfg.radius, size=n):
        for _ in range(100):
            c = rng.uniform(r, cfg.resolution - r, size=2)
            if all(np.hypot(*(c - c2)) > r + r2 + 1.0 for c2, r2 in zip(centres, radii, strict=True)):
                radii.append(r)
                centres.append(c)
                break
    return np.array(radii), np.array(centres)


def _velocity(angle: float, speed: float) -> np.ndarray:
    return speed * np.array([math.cos(angle), -math.sin(angle)])  # screen y points down


def _push_share(r_i: float, r_j: float, movable_i: bool, movable_j: bool) -> float:
    """Share of a contact impulse taken by object i: mass ~ r^2, a static object has infinite mass."""
    if not movable_i:
        return 0.0
    return r_j**2 / (r_i**2 + r_j**2) if movable_j else 1.0


def _collide(pos: np.ndarray, vel: np.ndarray, radius: np.ndarray, movable: np.ndarray, hit: np.ndarray) -> None:
    """Resolve overlapping pairs in place: elastic impulse (mass ~ r^2, static = infinite) and separation."""
    n = len(radius)
    for i in range(n):
        for j in range(i + 1, n):
            delta = pos[j] - pos[i]
            dist = math.hypot(delta[0], delta[1])
            overlap = radius[i] + radius[j] - dist
            if overlap <= 0 or not (movable[i] or movable[j]):
                continue
            nrm = delta / max(dist, 1e-6)
            approach = float((vel[i] - vel[j]) @ nrm)
            w_i = _push_share(radius[i], radius[j], movable[i], movable[j])
            w_j = 1.0 - w_i
            if approach > 0:
                vel[i] -= 2 * approach * w_i * nrm
                vel[j] += 2 * approach * w_j * nrm
                hit[i] = hit[j] = True
            pos[i] -= overlap * w_i * nrm
            pos[j] += overlap * w_j * nrm


def _walls(pos: np.ndarray, vel: np.ndarray, radius: np.ndarray, size: int) -> np.ndarray:
    """Reflect objects off the walls in place; returns which ones bounced ``[n]``."""
    lo, hi = radius[:, None], size - radius[:, None]
    below, above = pos < lo, pos > hi
    if not (below.any() or above.any()):
        return np.zeros(len(radius), dtype=bool)
    pos[:] = np.where(below, 2 * lo - pos, np.where(above, 2 * hi - pos, pos))
    pos[:] = np.clip(pos, lo, hi)
    vel[:] = np.where(below, np.abs(vel), np.where(above, -np.abs(vel), vel))
    return (below | above).any(axis=1)


def simulate(
    pos: np.ndarray,
    vel: np.ndarray,
    radius: np.ndarray,
    movable: np.ndarray,
    gravity: float,
    steps: int,
    cfg: WorldConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate ``steps`` frames: positions ``[S, n, 2]``, wall bounces ``[S, n]``, collisions ``[S, n]``."""
    pos, vel = pos.astype(np.float64).copy(), vel.astype(np.float64).copy()
    traj = np.zeros((steps, len(radius), 2))
    walls = np.zeros((steps, len(radius)), dtype=bool)
    hits = np.zeros_like(walls)
    traj[0] = pos
    for s in range(1, steps):
        pos += vel
        vel[:, 1] += gravity * movable
        if cfg.collisions:
            _collide(pos, vel, radius, movable, hits[s])
        walls[s] = _walls(pos, vel, radius, cfg.resolution) & movable
        traj[s] = pos
    return traj, walls, hits


def _upsample_matrix(size: int, coarse: int = 8) -> np.ndarray:
    """Bilinear interpolation weights ``[size, coarse]`` from a coarse grid to ``size`` samples."""
    return np.stack([np.interp(np.linspace(0, coarse - 1, size), np.arange(coarse), e) for e in np.eye(coarse)], 1)


def _background(rng: np.random.Generator, cfg: WorldConfig, upsample: np.ndarray) -> np.ndarray:
    """A light, low-saturation base colour plus smooth static texture (bilinear-upsampled coarse noise)."""
    base = rng.uniform(0.55, 0.75) + rng.uniform(-0.04, 0.04, size=(3, 1, 1))
    k = upsample.shape[1]
    coarse = rng.uniform(-1.0, 1.0, size=(1, k, k)) + 0.3 * rng.uniform(-1.0, 1.0, size=(3, k, k))  # mostly luminance
    texture = upsample @ coarse @ upsample.T  # [3, H, W]
    return np.clip(base + cfg.texture * texture, 0.0, 1.0).astype(np.float32).transpose(1, 2, 0)


def _sample_velocities(
    rng: np.random.Generator, cfg: WorldConfig, n: int, one_mover: bool, main_velocity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Movable flags ``[n]`` and velocities ``[n, 2]``: object 0 gets ``main_velocity``, others random or static."""
    movable = np.arange(n) == 0 if one_mover else np.ones(n, dtype=bool)
    vel = np.zeros((n, 2))
    vel[0] = main_velocity
    for k in np.flatnonzero(movable[1:]) + 1:
        vel[k] = _velocity(rng.uniform(0, 2 * math.pi), rng.uniform(*cfg.speed))
    return movable, vel


def _sample_occluder(rng: np.random.Generator, cfg: WorldConfig) -> tuple[int, int] | None:
    """Columns ``[x0, x1)`` of a vertical occluder bar, or None."""
    if rng.random() >= cfg.occluder_prob:
        return None
    width = int(rng.integers(cfg.occluder_width[0], cfg.occluder_width[1] + 1))
    margin = cfg.resolution // 8
    x0 = int(rng.integers(margin, max(margin + 1, cfg.resolution - margin - width)))
    return x0, x0 + width


def _next_event(scene_walls: np.ndarray, scene_hits: np.ndarray, frames: int) -> int:
    """First event of object 0 in the frames after the clip (collision wins ties)."""
    for s in range(frames, len(scene_walls)):
        if scene_hits[s, 0]:
            return NEXT_EVENTS.index("collide")
        if scene_walls[s, 0]:
            return NEXT_EVENTS.index("bounce_wall")
    return NEXT_EVENTS.index("none")


class SyntheticWorld:
    """Seeded scene sampler, simulator and renderer.

    Example:
        >>> frames, labels = SyntheticWorld(WorldConfig()).render_clip(0)  # uint8 [16, 64, 64, 3], dict
    """

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.cfg = config or WorldConfig()
        self._upsample = _upsample_matrix(self.cfg.resolution)

    def scene(self, seed: int) -> Scene:
        """Sample and simulate the scene of ``seed``."""
        cfg, rng = self.cfg, np.random.default_rng(seed)
        direction = int(rng.integers(cfg.num_directions))  # the class first: balanced by construction
        angle = (direction + rng.uniform(-0.25, 0.25)) * 2 * math.pi / cfg.num_directions
        speed = float(rng.uniform(*cfg.speed))
        radius, pos = _sample_layout(rng, cfg)
        n = len(radius)
        one_mover = n == 1 or bool(rng.random() < cfg.one_mover_prob)
        movable, vel = _sample_velocities(rng, cfg, n, one_mover, _velocity(angle, speed))
        colour, shape = rng.permutation(len(COLOURS))[:n], rng.integers(len(SHAPES), size=n)
        gravity = cfg.gravity if rng.random() < cfg.gravity_prob else 0.0
        occluder = _sample_occluder(rng, cfg)
        traj, walls, hits = simulate(pos, vel, radius, movable, gravity, cfg.frames + cfg.event_horizon, cfg)
        labels = {
            "seed": seed,
            "direction": direction,
            "angle": angle,
            "speed": speed,
            "one_mover": one_mover,
            "moved": int(colour[0]) if one_mover else -1,
            "count": n,
            "next_event": _next_event(walls, hits, cfg.frames),
            "appearance": int(shape[0]) * len(COLOURS) + int(colour[0]),
            "colour": int(colour[0]),
            "shape": int(shape[0]),
            "gravity": gravity > 0,
            "occluder": occluder is not None,
        }
        return Scene(
            seed=seed,
            radius=radius,
            colour=colour,
            shape=shape,
            movable=movable,
            depth=rng.permutation(n),
            positions=traj,
            wall_hits=walls,
            collisions=hits,
            background=_background(rng, cfg, self._upsample),
            occluder=occluder,
            labels=labels,
        )

    def _paint(self, frames: np.ndarray, scene: Scene, k: int) -> None:
        """Composite object ``k`` onto ``frames [T, H, W, 3]`` in place, within a per-frame window around it."""
        size, r = self.cfg.resolution, float(scene.radius[k])
        centre = scene.positions[: self.cfg.frames, k]  # [T, 2]
        win = min(int(math.ceil(2 * r)) + 3, size)
        start = np.clip(np.floor(centre - r - 1).astype(int), 0, size - win)  # [T, 2]
        offs = np.arange(win)
        xs, ys = start[:, 0, None] + offs, start[:, 1, None] + offs  # [T, win]
        dx = (xs + 0.5 - centre[:, 0, None])[:, None, :].astype(np.float32)  # [T, 1, win]
        dy = (ys + 0.5 - centre[:, 1, None])[:, :, None].astype(np.float32)  # [T, win, 1]
        if SHAPES[scene.shape[k]] == "disc":
            alpha = np.clip(r + 0.5 - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)
        else:
            half = r * _SQUARE_HALF + 0.5
            alpha = np.clip(half - np.abs(dx), 0.0, 1.0) * np.clip(half - np.abs(dy), 0.0, 1.0)
        if not self.cfg.antialias:
            alpha = (alpha >= 0.5).astype(np.float32)
        index = (np.arange(len(centre))[:, None, None], ys[:, :, None], xs[:, None, :])
        region = frames[index]  # [T, win, win, 3]
        frames[index] = region + alpha[..., None] * (_PALETTE[scene.colour[k]] - region)

    def render(self, scene: Scene) -> np.ndarray:
        """Render a scene's clip to uint8 frames ``[T, H, W, 3]``."""
        cfg = self.cfg
        frames = np.repeat(scene.background[None], cfg.frames, axis=0)  # [T, H, W, 3]
        for k in scene.depth:
            self._paint(frames, scene, k)
        if scene.occluder is not None:
            frames[:, :, scene.occluder[0] : scene.occluder[1]] = _OCCLUDER_RGB
        if cfg.noise > 0:
            rng = np.random.default_rng([scene.seed, 1])
            frames += cfg.noise * rng.standard_normal(frames.shape, dtype=np.float32)
        frames *= 255.0
        frames += 0.5
        return np.clip(frames, 0.0, 255.0, out=frames).astype(np.uint8)

    def render_clip(self, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """``(frames uint8 [T, H, W, 3], labels)`` for ``seed``."""
        scene = self.scene(seed)
        return self.render(scene), dict(scene.labels)


def to_model_layout(frames: np.ndarray, normalize: bool = True) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> ``[3, T, H, W]``: float32 ImageNet-normalised, or uint8 when ``normalize=False``."""
    video = np.ascontiguousarray(frames.transpose(3, 0, 1, 2))  # [3, T, H, W] uint8
    if normalize:
        video = _NORMALISE[np.arange(3)[:, None, None, None], video]  # a table lookup: fast and thread-free
    return torch.from_numpy(video)


def split_seeds(split: str, n: int, start: int = 0) -> range:
    """Seeds ``[start, start + n)`` of a split; the ``train``, ``val`` and ``test`` seed ranges never overlap."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    base, size = SPLITS[split]
    if start < 0 or start + n > size:
        raise UserError(f"split {split!r} holds {size} seeds; asked for [{start}, {start + n})")
    return range(base + start, base + start + n)


class SyntheticVideoDataset(torch.utils.data.Dataset):
    """Map-style dataset of synthetic clips: item ``i`` is ``(video [3, T, H, W], labels)`` for ``seeds[i]``.

    Args:
        config: the world.
        seeds: clip seeds, e.g. ``split_seeds("train", 10_000)``.
        normalize: ImageNet-normalised float32 (the model layout) or raw uint8.
    """

    def __init__(self, config: WorldConfig | None = None, seeds: Sequence[int] = range(1000), normalize: bool = True):
        self.world = SyntheticWorld(config)
        self.seeds = seeds
        self.normalize = normalize

    @classmethod
    def split(cls, split: str, n: int, config: WorldConfig | None = None, **kwargs: Any) -> SyntheticVideoDataset:
        """The first ``n`` clips of a split."""
        return cls(config, split_seeds(split, n), **kwargs)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        frames, labels = self.world.render_clip(int(self.seeds[i]))
        return to_model_layout(frames, self.normalize), labels


def _write_mp4(path: Path, frames: np.ndarray, fps: int, codec: str) -> None:
    import av  # optional dependency, only needed to write files

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "fast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_videos(
    out_dir: str | Path,
    n: int,
    seed0: int = 0,
    config: WorldConfig | None = None,
    label: str = "direction",
    codec: str = "libx264",
) -> Path:
    """Write ``n`` clips (seeds ``seed0 ..``) as mp4 files plus data lists.

    Writes ``out_dir/videos/<seed>.mp4``, ``out_dir/videos.csv`` (official list format: space-delimited
    ``path label``, no header) and ``out_dir/labels.json`` (every label of every clip, keyed by path).

    Returns:
        The path of ``videos.csv``.
    """
    world, out = SyntheticWorld(config), Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rows, all_labels = [], {}
    for seed in range(seed0, seed0 + n):
        frames, labels = world.render_clip(seed)
        path = (out / "videos" / f"{seed:010d}.mp4").resolve()
        _write_mp4(path, frames, world.cfg.fps, codec)
        rows.append((str(path), int(labels[label])))
        all_labels[str(path)] = labels
    csv_path = out / "videos.csv"
    with open(csv_path, "w", newline="") as f:
        csv.writer(f, delimiter=" ").writerows(rows)
    (out / "labels.json").write_text(json.dumps(all_labels, indent=1))
    return csv_path
