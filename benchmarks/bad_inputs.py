"""Bad inputs against every command: each must fail loudly, in the right way, without losing work.

Each case runs ``python -m vjepa2 ...`` in a scratch folder with a timeout and is judged on its exit code
(2: user error, 1: partial failure, 0: success where the input is valid after all), on whether stderr says
``error: ...`` (or argparse's usage error) without a Python traceback, and on whether it returned before the
timeout. Cases that write files also check that nothing valid was lost or overwritten. Prints a markdown table
(docs/bad-inputs.md holds the last run) and exits 1 if any case is silent, hangs or shows a traceback.

    python benchmarks/bad_inputs.py                 # all cases (about 2 minutes on 2 cores)
    python benchmarks/bad_inputs.py --only embed    # one command's cases
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    command: str
    what: str
    args: list[str]
    expect: int  # exit code
    check: Callable[[Path], bool] | None = None  # work not lost / files intact


def fixtures(tmp: Path) -> None:
    """Small files the cases refer to: a good clip, a good image, broken files, a tiny checkpoint."""
    import av
    from PIL import Image

    from vjepa2.weights import load_encoder
    from vjepa2.weights.files import atomic_save

    with av.open(str(tmp / "clip.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(tmp / "image.png")
    Image.fromarray(np.zeros((2, 16384, 3), np.uint8)).save(tmp / "bomb.png")
    (tmp / "corrupt.mp4").write_bytes(os.urandom(4096))
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "garbage.pt").write_bytes(os.urandom(1000))
    (tmp / "evil.pt").write_bytes(pickle.dumps({"x": 1}))
    (tmp / "bad.yaml").write_text("model: [unclosed\n")
    (tmp / "python.yaml").write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    (tmp / "empty_dir").mkdir()
    (tmp / "traj_bad").mkdir()
    (tmp / "traj_bad" / "ep.npz").write_bytes(os.urandom(500))
    (tmp / "labels.txt").write_text("a\nb\n")
    torch.manual_seed(0)
    atomic_save({"target_encoder": load_encoder("vit_test").state_dict()}, tmp / "enc.pt")
    (tmp / "existing.safetensors").write_bytes(b"precious")
    ok = tmp / "run_damaged"
    ok.mkdir()
    data = bytearray((tmp / "enc.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (ok / "latest.pt").write_bytes(bytes(data))


def intact(name: str, content: bytes | None = None) -> Callable[[Path], bool]:
    def check(tmp: Path) -> bool:
        path = tmp / name
        return path.exists() and (content is None or path.read_bytes() == content)

    return check


TINY = ["--model", "vit_test", "--frames", "4", "--resolution", "64"]
PRE = ["model.encoder=vit_test", "data.crop=64", "data.frames=4", "data.batch_size=2", "optim.steps=1"]


def cases() -> list[Case]:
    out = "out.safetensors"
    return [
        Case("embed", "missing file", ["embed", "nope.mp4", *TINY, "--out", out], 1),
        Case("embed", "empty file", ["embed", "empty.mp4", *TINY, "--out", out], 1),
        Case("embed", "corrupt video beside a good one", ["embed", "corrupt.mp4", "clip.mp4", *TINY, "--out", out], 1,
             lambda t: (t / out).exists()),
        Case("embed", "16384x2 PNG beside good files", ["embed", "bomb.png", "clip.mp4", "image.png", *TINY,
             "--out", out], 1, lambda t: (t / out).exists()),
        Case("embed", "--out is an input", ["embed", "clip.mp4", *TINY, "--out", "clip.mp4"], 2, intact("clip.mp4")),
        Case("embed", "--out exists", ["embed", "clip.mp4", *TINY, "--out", "existing.safetensors"], 2,
             intact("existing.safetensors", b"precious")),
        Case("embed", "--resolution 0", ["embed", "clip.mp4", "--model", "vit_test", "--resolution", "0",
             "--out", out], 2),
        Case("embed", "--resolution 8", ["embed", "clip.mp4", "--model", "vit_test", "--resolution", "8",
             "--out", out], 2),
        Case("embed", "--frames 0", ["embed", "clip.mp4", "--model", "vit_test", "--frames", "0", "--out", out], 2),
        Case("embed", "empty folder", ["embed", "empty_dir", *TINY, "--out", out], 2),
        Case("embed", "weights: random bytes", ["embed", "clip.mp4", *TINY, "--weights", "garbage.pt",
             "--out", out], 2),
        Case("embed", "weights: a pickle", ["embed", "clip.mp4", *TINY, "--weights", "evil.pt", "--out", out], 2),
        Case("embed", "weights: missing", ["embed", "clip.mp4", *TINY, "--weights", "nope.pt", "--out", out], 2),
        Case("embed", "weights: wrong preset", ["embed", "clip.mp4", "--model", "vit_tiny", "--weights", "enc.pt",
             "--out", out], 2),
        Case("embed", "unknown preset", ["embed", "clip.mp4", "--model", "vit_nope"], 2),
        Case("pretrain", "missing --config", ["pretrain", "--config", "nope.yaml"], 2),
        Case("pretrain", "malformed YAML", ["pretrain", "--config", "bad.yaml"], 2),
        Case("pretrain", "YAML python tag", ["pretrain", "--config", "python.yaml"], 2),
        Case("pretrain", "unknown key", ["pretrain", "data.bogus=1"], 2),
        Case("pretrain", "override without =", ["pretrain", "data.batch_size"], 2),
        Case("pretrain", "batch_size=true", ["pretrain", "data.batch_size=true"], 2),
        Case("pretrain", "batch_size=0", ["pretrain", "data.batch_size=0"], 2),
        Case("pretrain", "checkpoint_every=0", ["pretrain", "run.checkpoint_every=0"], 2),
        Case("pretrain", "grad_accum=0", ["pretrain", "optim.grad_accum=0"], 2),
        Case("pretrain", "steps=-5", ["pretrain", "optim.steps=-5"], 2),
        Case("pretrain", "strategy=zero3", ["pretrain", "run.strategy=zero3"], 2),
        Case("pretrain", "ema=[2.0,3.0]", ["pretrain", "optim.ema=[2.0,3.0]"], 2),
        Case("pretrain", "crop not a patch multiple", ["pretrain", "data.crop=250"], 2),
        Case("pretrain", "unknown encoder", ["pretrain", "model.encoder=vit_nope"], 2),
        Case("pretrain", "missing dataset folder", ["pretrain", *PRE, "data.datasets=[nope_dir]", "run.out=r1"], 2),
        Case("pretrain", "missing init_from", ["pretrain", *PRE, "run.init_from=nope.pt", "run.out=r2"], 2),
        Case("pretrain", "only checkpoint damaged", ["pretrain", *PRE, "run.out=run_damaged"], 2,
             intact("run_damaged/latest.pt")),
        Case("pretrain", "WORLD_SIZE=2 without peers", ["pretrain", *PRE, "run.out=r3"], 1),
        Case("train-ac", "no data.trajectories", ["train-ac", "model.encoder=vit_test"], 2),
        Case("train-ac", "missing trajectory folder", ["train-ac", "data.trajectories=[nope]"], 2),
        Case("train-ac", "corrupt trajectory file", ["train-ac", "data.trajectories=[traj_bad]",
             "model.encoder=vit_test", "model.predictor=ac_vit_test"], 2),
        Case("train-ac", "encoder_weights missing", ["train-ac", "model.encoder_weights=nope.pt"], 2),
        Case("collect", "--episodes -1", ["collect", "--env", "wall", "--episodes", "-1", "--out", "c"], 2),
        Case("collect", "unknown env", ["collect", "--env", "mars", "--episodes", "1", "--out", "c"], 2),
        Case("plan", "world model missing", ["plan", "--env", "franka-reach", "--world-model", "nope.pt"], 2),
        Case("plan", "world model random bytes", ["plan", "--env", "franka-reach", "--world-model", "garbage.pt"], 2),
        Case("eval-plan", "world model missing", ["eval-plan", "--env", "wall", "--world-model", "nope.pt"], 2),
        Case("energy-landscape", "--n 0", ["energy-landscape", "--world-model", "enc.pt", "--env", "franka-reach",
             "--n", "0"], 2),
        Case("probe", "missing config", ["probe", "--config", "nope.yaml"], 2),
        Case("probe", "unknown key", ["probe", "bogus=1"], 2),
        Case("classify", "probe missing", ["classify", "clip.mp4", "--probe", "nope.pt"], 2),
        Case("classify", "probe random bytes", ["classify", "clip.mp4", "--probe", "garbage.pt"], 2),
        Case("curate", "pool missing", ["curate", "--pool", "nope", "--target", "empty_dir", "--out", "c.csv"], 2),
        Case("prepare-mix", "--scale 0", ["prepare-mix", "--scale", "0", "--out", "m"], 2),
        Case("package-weights", "checkpoint missing", ["package-weights", "nope.pt", "--out", "w.safetensors"], 2),
        Case("package-weights", "--out exists", ["package-weights", "enc.pt", "--out", "existing.safetensors"], 2,
             intact("existing.safetensors", b"precious")),
        Case("package-weights", "not a pretrain checkpoint", ["package-weights", "enc.pt", "--out", "w2.st"], 2),
    ]  # fmt: skip


def run_case(case: Case, tmp: Path, timeout: float) -> dict:
    (tmp / "out.safetensors").unlink(missing_ok=True)  # each embed case starts without an output
    env = {**os.environ, "PYTHONPATH": str(REPO), "VJEPA2_INIT_TIMEOUT": "5"}
    if "WORLD_SIZE" in case.what:
        env |= {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29581"}
    tic = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vjepa2", *case.args], cwd=tmp, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        code, err = None, ""
    seconds = time.monotonic() - tic
    traceback = "Traceback (most recent call last)" in err
    said = any(line.startswith(("error:", "vjepa2: error:")) or ": error:" in line for line in err.splitlines())
    kept = case.check(tmp) if case.check else True
    if code is None:
        outcome = "HANG"
    elif traceback:
        outcome = "TRACEBACK"
    elif code == 0 and case.expect != 0:
        outcome = "SILENT"
    elif code != case.expect or not said or not kept:
        outcome = "WRONG" + ("" if kept else " (work lost)")
    else:
        outcome = "ok"
    last = next((line for line in reversed(err.splitlines()) if "error" in line), err.strip()[-160:])
    return {"command": case.command, "input": case.what, "expected": case.expect, "exit": code,
            "outcome": outcome, "seconds": round(seconds, 1), "message": last[:160]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run only this command's cases")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case counts as a hang")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fixtures(tmp)
        for case in cases():
            if args.only and case.command != args.only:
                continue
            rows.append(run_case(case, tmp, args.timeout))
            print(f"{rows[-1]['outcome']:>10}  {case.command}: {case.what}", file=sys.stderr, flush=True)
    print("| command | bad input | expected exit | exit | outcome | message |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        msg = r["message"].replace("|", "\\|")
        print(f"| {r['command']} | {r['input']} | {r['expected']} | {r['exit']} | {r['outcome']} | `{msg}` |")
    bad = [r for r in rows if r["outcome"] != "ok"]
    counts = {k: sum(r["outcome"].startswith(k) for r in rows) for k in ("ok", "SILENT", "HANG", "TRACEBACK", "WRONG")}
    print(f"\n{len(rows)} cases: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
