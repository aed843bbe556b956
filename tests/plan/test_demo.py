"""``vjepa2 demo``: the shipped world model by default; ``--from-scratch`` by step counts, cut-short stages loud."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pybullet")
pytest.importorskip("matplotlib")

from vjepa2.cli import main  # noqa: E402


def test_demo_plans_with_the_shipped_world_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--plan-episodes", "1"]) == 0
    text = capsys.readouterr().out
    assert "| latent | " in text and "| random | " in text and "world model vjepa2_ac_tiny_reach" in text
    for name in ("episode.gif", "landscape.png", "plan.json", "demo.json"):
        assert (out / name).stat().st_size > 0
    record = json.loads((out / "demo.json").read_text())
    assert record["world_model"] == "vjepa2_ac_tiny_reach" and record["warnings"] == []
    assert main(["demo", "--out", str(out), "--plan-episodes", "1"]) == 0  # the demo owns its folder: reruns work


@pytest.mark.slow
def test_demo_from_scratch_by_steps_and_a_time_cap_is_reported(tmp_path, capsys):
    out = tmp_path / "scratch"
    argv = ["demo", "--from-scratch", "--out", str(out), "--episodes", "2", "--plan-episodes", "1"]
    assert main([*argv, "--pretrain-steps", "2", "--ac-steps", "2"]) == 0
    assert json.loads((out / "demo.json").read_text())["warnings"] == []
    assert (out / "losses.png").stat().st_size > 0
    capsys.readouterr()
    # More steps with a cap that ends each stage after its first step: exit 1 and a loud warning per stage.
    assert main([*argv, "--pretrain-steps", "50", "--ac-steps", "50", "--max-minutes", "1e-6"]) == 1
    text = capsys.readouterr().out
    assert "WARNING: STOPPED EARLY: stage 1 (V-JEPA) ran" in text and "WARNING: STOPPED EARLY: stage 2 (AC) ran" in text
