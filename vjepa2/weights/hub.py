"""Weights by name: the released official files and Hugging Face repositories.

:data:`RELEASES` lists every released V-JEPA 2 and 2.1 model with its preset, file, URL, torch.hub entry and
Hugging Face id. :func:`fetch` downloads a release file into the standard torch hub cache
(``torch.hub.get_dir()/checkpoints``, as ``torch.hub.load_state_dict_from_url`` would), with a timeout, atomically,
and verifies it (the zip CRCs of every member and the model entry) before use; a cached file is verified again.
:func:`hf_snapshot` fetches a Hugging Face repository through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``).
``VJEPA2_WEIGHTS_URL`` replaces the base URL (a mirror, or a local server in tests).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vjepa2.weights.checks import WeightsError

BASE_URL = "https://dl.fbaipublicfiles.com/vjepa2/"
TIMEOUT = 30.0  # seconds without data before a download fails


@dataclass(frozen=True)
class Release:
    """One released checkpoint: the preset it loads into, its file and where it is published."""

    preset: str  # our encoder preset (AC: the AC predictor preset)
    file: str
    hub: str  # the official torch.hub entry
    hf: str | None  # Hugging Face repository
    params: str
    encoder: str | None = None  # the encoder preset when ``preset`` is not one (AC, probes)
    key: str = "target_encoder"  # the encoder entry
    kind: str = "encoder"  # encoder | ac | probe

    @property
    def url(self) -> str:
        return os.environ.get("VJEPA2_WEIGHTS_URL", BASE_URL).rstrip("/") + "/" + self.file


RELEASES: tuple[Release, ...] = (
    Release("vit_large", "vitl.pt", "vjepa2_vit_large", "facebook/vjepa2-vitl-fpc64-256", "300M"),
    Release("vit_huge", "vith.pt", "vjepa2_vit_huge", "facebook/vjepa2-vith-fpc64-256", "600M"),
    Release("vit_giant", "vitg.pt", "vjepa2_vit_giant", "facebook/vjepa2-vitg-fpc64-256", "1B"),
    Release("vit_giant_384", "vitg-384.pt", "vjepa2_vit_giant_384", "facebook/vjepa2-vitg-fpc64-384", "1B"),
    Release("ac_vit_giant", "vjepa2-ac-vitg.pt", "vjepa2_ac_vit_giant", None, "1B + 305M", "vit_giant", "encoder",
            "ac"),
    Release("vjepa2_1_vit_base_384", "vjepa2_1_vitb_dist_vitG_384.pt", "vjepa2_1_vit_base_384", None, "80M",
            key="ema_encoder"),
    Release("vjepa2_1_vit_large_384", "vjepa2_1_vitl_dist_vitG_384.pt", "vjepa2_1_vit_large_384", None, "300M",
            key="ema_encoder"),
    Release("vjepa2_1_vit_giant_384", "vjepa2_1_vitg_384.pt", "vjepa2_1_vit_giant_384", None, "1B"),
    Release("vjepa2_1_vit_gigantic_384", "vjepa2_1_vitG_384.pt", "vjepa2_1_vit_gigantic_384", None, "2B"),
    # attentive probes of the paper (official evals/), each on the frozen encoder named in ``encoder``
    *(
        Release(name, f"evals/{name}.pt", name, None, "probe", enc, kind="probe")
        for name, enc in (
            ("ssv2-vitl-16x2x3", "vit_large"), ("diving48-vitl-256", "vit_large"), ("ek100-vitl-256", "vit_large"),
            ("ssv2-vitg-384-64x2x3", "vit_giant_384"), ("diving48-vitg-384-32x4x3", "vit_giant_384"),
            ("ek100-vitg-384", "vit_giant_384"),
        )
    ),
)  # fmt: skip


def release(name: str) -> Release:
    """The release of a preset name or official hub entry name."""
    for rel in RELEASES:
        if name in (rel.preset, rel.hub):
            return rel
    known = sorted({r.preset for r in RELEASES})
    raise WeightsError(f"no released weights are named {name!r}; released: {known}")


def cache_dir() -> Path:
    """Where release files are kept: the torch hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached(name: str) -> Path | None:
    path = cache_dir() / release(name).file
    return path if path.is_file() else None


def _verify(path: Path, rel: Release) -> None:
    from vjepa2.weights.files import CheckpointError, verify_checkpoint

    try:
        verify_checkpoint(path)
    except CheckpointError as err:
        raise WeightsError(f"{err} (from {rel.url}); delete it to download it again") from err


def fetch(name: str, progress: bool = True) -> Path:
    """The local file of release ``name``, downloaded into :func:`cache_dir` on first use and verified.

    Raises:
        WeightsError: the download failed (naming the URL and the cache folder) or the file is damaged.
    """
    rel = release(name)
    path = cache_dir() / rel.file
    if not path.is_file():
        _download(rel.url, path, progress)
    _verify(path, rel)
    return path


def _download(url: str, path: Path, progress: bool) -> None:
    from tqdm import tqdm

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, tmp.open("wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
            if total is not None and f.tell() != total:
                raise OSError(f"connection closed after {f.tell()} of {total} bytes")
        tmp.replace(path)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        tmp.unlink(missing_ok=True)
        raise WeightsError(
            f"cannot download {url} into {path.parent}: {err}. Without network, copy the file there by hand "
            "or pass its path as weights"
        ) from err


def hf_snapshot(repo_id: str) -> Path:
    """A local folder of Hugging Face repository ``repo_id`` (config and safetensors) via ``huggingface_hub``.

    Uses its cache; with ``HF_HUB_OFFLINE=1`` only the cache. Raises :class:`WeightsError` naming the repository and
    the cache folder when the files are neither cached nor reachable.
    """
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError as err:
        raise WeightsError(f"hf:{repo_id} needs huggingface_hub: pip install 'vjepa2[hub]'") from err
    try:
        folder = snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"], etag_timeout=TIMEOUT)
    except Exception as err:  # offline misses, unknown repos, network errors: all name the repository
        raise WeightsError(
            f"cannot get the Hugging Face repository {repo_id} (cache {constants.HF_HUB_CACHE}, "
            f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}): {type(err).__name__}: {err}"
        ) from err
    return Path(folder)
