"""Curation: quotas, retrieval toward a target's clusters, and ``vjepa2 curate`` on two kinds of synthetic videos."""

import json

import numpy as np
import pytest
import torch

from vjepa2.cli import main
from vjepa2.data.synthetic import WorldConfig, write_videos
from vjepa2.eval.curate import cluster_quotas, retrieve

pytest.importorskip("sklearn")

# Two clearly different kinds: one big object and no occluder, or a crowd of small objects behind an occluder bar.
KINDS = {
    "single": WorldConfig(frames=4, max_objects=1, radius=(10.0, 14.0), occluder_prob=0.0),
    "crowd": WorldConfig(frames=4, min_objects=5, max_objects=6, radius=(4.0, 6.0), occluder_prob=1.0),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_cluster_quotas_match_the_target_and_respect_the_pool():
    assert cluster_quotas(np.array([2, 2, 0]), np.array([10, 10, 10]), 6).tolist() == [3, 3, 0]
    assert cluster_quotas(np.array([3, 1, 0]), np.array([10, 1, 10]), 8).tolist() == [7, 1, 0]  # shortfall moved
    assert cluster_quotas(np.array([1, 1, 0]), np.array([2, 3, 10]), 50).tolist() == [2, 3, 0]  # never off-target
    assert cluster_quotas(np.array([1, 1, 1]), np.array([5, 5, 5]), 4).sum() == 4


def test_retrieve_returns_the_target_kind():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 4  # kind A: clusters 0, 1; kind B: clusters 2, 3
    pool = centres.repeat_interleave(25, 0) + torch.randn(100, 16, generator=g)
    target = centres[:2].repeat_interleave(5, 0) + torch.randn(10, 16, generator=g)
    cur = retrieve(pool, target, k=4, size=30)
    assert len(cur.selected) == 30 and len(set(cur.selected.tolist())) == 30
    assert (cur.selected < 50).all()  # all of kind A
    hist = cur.histograms()
    np.testing.assert_allclose(hist["retrieved"], hist["target"], atol=0.1)


def test_curate_command_on_two_kinds_of_synthetic_videos(tmp_path, capsys):
    for kind, seed0 in [("single", 0), ("crowd", 100)]:
        write_videos(tmp_path / "pool" / kind, 8, seed0=seed0, config=KINDS[kind])
    write_videos(tmp_path / "target", 4, seed0=1000, config=KINDS["single"])
    out = tmp_path / "curated" / "list.csv"
    args = ["curate", "--pool", str(tmp_path / "pool"), "--target", str(tmp_path / "target" / "videos.csv")]
    args += ["--out", str(out), "--clusters", "4", "--size", "8", "--model", "vit_test", "--frames", "4"]
    assert main(args) == 0
    assert "RANDOM" in capsys.readouterr().err
    paths = out.read_text().split()
    assert len(paths) == 8
    precision = np.mean(["/single/" in p for p in paths])
    assert precision > 0.8, paths
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["pool"] == 16 and summary["retrieved"] == 8 and len(summary["shares"]["target"]) == 4
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_curate_errors_name_the_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = ["curate", "--pool", str(tmp_path / "empty"), "--target", str(tmp_path / "empty"), "--out", "x.csv"]
    assert main([*args, "--model", "vit_test"]) == 2
    assert "empty" in capsys.readouterr().err
