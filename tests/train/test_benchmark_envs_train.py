"""Benchmark envs end to end: ``collect`` Two-Rooms, stage 1 on its frames, stage 2 on its stacked actions
(frame step 5: 10-D actions, 2-D states) with the shipped configs, then ``eval-plan`` on the world model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("gymnasium")

from vjepa2.cli import main  # noqa: E402
from vjepa2.plan.load import load_world_model, read_checkpoint_info  # noqa: E402
from vjepa2.train.metrics import read_metrics  # noqa: E402

SMALL = ["data.frames=4", "data.batch_size=2", "optim.steps=2", "optim.warmup=1", "data.num_workers=0",
         "run.dtype=fp32", "run.progress=false", "run.max_minutes=null", "run.log_every=1"]  # fmt: skip
MODELS = ["model.encoder=vit_test", "model.predictor=vit_test"]
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_collect_pretrain_train_ac_and_eval_plan_on_two_rooms(tmp_path, capsys):
    data, enc, wm = tmp_path / "data", tmp_path / "enc", tmp_path / "wm"
    collect = ["--env", "wall", "--episodes", "3", "--steps", "40", "--image-size", "32", "--out", str(data)]
    pretrain = [f"data.datasets=[{data}]", "data.crop=32", "data.ipe=2", *MODELS, f"run.out={enc}", *SMALL]
    train_ac = [f"data.trajectories=[{data}]", "data.resolution=32", "optim.anneal=0", f"run.out={wm}", *SMALL,
                *MODELS, "model.predictor=ac_vit_test", f"model.encoder_weights={enc / 'latest.pt'}"]  # fmt: skip
    assert main(["collect", *collect]) == 0
    assert main(["pretrain", "--config", str(CONFIGS / "pretrain" / "wall.yaml"), *pretrain]) == 0
    assert main(["train-ac", "--config", str(CONFIGS / "ac" / "wall.yaml"), *train_ac]) == 0  # its frame step: 5
    assert [r["step"] for r in read_metrics(wm / "metrics.jsonl")] == [1, 2]
    info = read_checkpoint_info(wm / "latest.pt")
    assert (info.predictor.action_dim, info.predictor.state_dim, info.frame_step, info.poses) == (10, 2, 5, False)
    assert info.transform == "resize+blur=0.2"  # the shipped blur travels with the checkpoint to the planner
    with pytest.raises(ValueError, match="pose_fn"):  # no Franka pose update for a 2-D point agent
        load_world_model(wm / "latest.pt", dtype="fp32").pose_fn(torch.zeros(1, 2), torch.zeros(1, 10))
    capsys.readouterr()
    cem = ["--cem", "cpu", "--samples", "8", "--topk", "2", "--iterations", "1", "--baselines", "random"]
    assert main(["eval-plan", "--env", "wall", "--world-model", str(wm / "latest.pt"), "--episodes", "1",
                 "--budget", "10", *cem, "--device", "cpu", "--dtype", "fp32"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "| latent |" in table and "| random |" in table and "frameskip 5" in table
