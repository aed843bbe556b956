"""Video QA (issue 23): benchmark, tokenizer, model input layout, loss masking, LM loading, learning, commands."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from vjepa2.cli import main  # noqa: E402
from vjepa2.config_io import load_config  # noqa: E402
from vjepa2.data.synthetic import COLOURS, NEXT_EVENTS, SHAPES, SyntheticWorld, WorldConfig, write_videos  # noqa: E402
from vjepa2.errors import ConfigError, UserError  # noqa: E402
from vjepa2.qa.batch import item_batch  # noqa: E402
from vjepa2.qa.evaluate import chance, evaluate  # noqa: E402
from vjepa2.qa.model import build_lm, build_model  # noqa: E402
from vjepa2.qa.qa_config import LMConfig, ModelConfig, QAConfig  # noqa: E402
from vjepa2.qa.run import features_for, load_run  # noqa: E402
from vjepa2.qa.synthetic import (  # noqa: E402
    DIRECTIONS,
    EVENTS,
    NUMBERS,
    QUESTION_TYPES,
    answer_set,
    build_qa_set,
    vocabulary,
)
from vjepa2.qa.tokenizer import build_tokenizer, load_tokenizer  # noqa: E402
from vjepa2.qa.train import train  # noqa: E402

WORLD = WorldConfig(frames=8)
TINY_LM = LMConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(vocabulary(WORLD))


@pytest.fixture(scope="module")
def qa():
    return build_qa_set("train", 80, WORLD)


def tiny_model(tok, video: bool = True, pooling: str = "attentive"):
    torch.manual_seed(0)
    lm = build_lm(TINY_LM, len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    return build_model(ModelConfig(video=video, pooling=pooling, queries=3), lm, 24, (2, 4, 4)).eval()


# ------------------------------------------------------------------ tokenizer


def test_tokenizer_round_trip_and_reload(tok, qa, tmp_path):
    texts = [i.prompt + " " + i.answer for i in qa.items[:50]]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    assert (
        tok("What colour is the object that moves?", add_special_tokens=False)["input_ids"]
        == tok("what colour is the object that moves ?", add_special_tokens=False)["input_ids"]
    )
    assert tok("zebra", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    tok.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")
    assert len(again) == len(tok)
    for text in texts[:10]:
        assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert (again.pad_token_id, again.bos_token_id, again.eos_token_id) == (0, 2, 3)


# ------------------------------------------------------------------ the benchmark


def test_answers_match_the_scene(qa):
    world = SyntheticWorld(WORLD)
    colours = list(COLOURS)
    assert {i.qtype for i in qa.items} == set(QUESTION_TYPES)
    for item in qa.items:
        scene = world.scene(item.seed)
        lab = scene.labels
        if item.qtype == "direction":
            assert item.answer == DIRECTIONS[lab["direction"]]
            assert f"{colours[scene.colour[0]]} {SHAPES[scene.shape[0]]}" in item.question
        elif item.qtype == "count":
            assert item.answer == NUMBERS[lab["count"]]
        elif item.qtype == "colour":
            assert lab["one_mover"] and item.answer == colours[lab["moved"]]
        elif item.qtype == "shape":
            k = [colours[c] for c in scene.colour].index(item.question.split()[4])  # "what shape is the <colour> ..."
            assert item.answer == SHAPES[scene.shape[k]]
        elif item.qtype == "collision":
            assert item.answer == ("yes" if scene.collisions[: WORLD.frames].any() else "no")
        elif item.qtype == "next_event":
            assert item.answer == EVENTS[NEXT_EVENTS[lab["next_event"]]]
        if item.format == "mc":
            assert item.answer in item.options and len(set(item.options)) == len(item.options) == min(
                4, len(answer_set(item.qtype, WORLD))
            )
            assert item.prompt.startswith(item.question) and all(o in item.prompt for o in item.options)
        else:
            assert item.options == () and item.prompt == item.question


def test_answers_balanced_and_splits_disjoint(qa):
    for qtype, items in qa.by_type().items():
        counts = Counter(i.answer for i in items if i.format == "open")
        assert set(counts) == set(answer_set(qtype, WORLD)), qtype
        assert len(set(counts.values())) == 1, (qtype, counts)  # every answer equally often: no text prior
        mc_positions = Counter(i.options.index(i.answer) for i in items if i.format == "mc")
        assert len(mc_positions) > 1  # the right option is not always in the same place
    test = build_qa_set("test", 80, WORLD)
    assert not set(qa.seeds) & set(test.seeds)
    assert build_qa_set("train", 80, WORLD).items == qa.items  # deterministic


# ------------------------------------------------------------------ model input and loss


def test_visual_tokens_precede_question_tokens(tok, qa):
    model = tiny_model(tok)
    items = list(qa.items[:4])
    text = item_batch(tok, items)
    feats = torch.randn(4, 32, 24)
    seen = {}
    model.lm.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    with torch.no_grad():
        model(feats, text.ids, text.mask, text.labels)
        vis = model.visual_tokens(feats)
        words = model.lm.get_input_embeddings()(text.ids)
    V = vis.shape[1]
    assert V == 3  # the pooler's queries
    emb, mask, pos = seen["inputs_embeds"], seen["attention_mask"], seen["position_ids"]
    assert torch.allclose(emb[:, :V], vis) and torch.allclose(emb[:, V:], words)
    assert (mask[:, :V] == 1).all() and torch.equal(mask[:, V:], text.mask)
    assert torch.equal(pos[0, : V + 3], torch.arange(V + 3))
    # left padding for generation moves pads to the front; the visual tokens still take positions 0 .. V-1
    inp = model.inputs(feats, text.ids, text.mask, left_pad=True)
    for b in range(4):
        first = int((inp.mask[b] == 0).sum())
        assert torch.allclose(inp.embeds[b, first : first + V], vis[b])
        assert torch.equal(inp.positions[b, first:], torch.arange(inp.mask.shape[1] - first))
    # the blind model reads the text alone
    blind = tiny_model(tok, video=False)
    assert blind.inputs(None, text.ids, text.mask).visual == 0


def test_spatial_pooling_keeps_time_steps(tok):
    model = tiny_model(tok, pooling="spatial")
    feats = torch.arange(2 * 32 * 24, dtype=torch.float32).view(2, 32, 24)
    pooled = model.pooler(feats)  # grid (2, 4, 4) -> 2 x 2 x 2 cells
    assert pooled.shape == (2, 8, 24)
    assert torch.allclose(pooled[:, 0], feats.view(2, 2, 4, 4, 24)[:, 0, :2, :2].mean((1, 2)))


def test_loss_only_on_answer_tokens(tok, qa):
    model = tiny_model(tok)
    items = [i for i in qa.items if i.qtype == "next_event"][:3]  # multi-token answers
    text = item_batch(tok, items)
    for row, item in zip(text.labels, items, strict=True):
        answer = tok(item.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert row[row != -100].tolist() == answer
        prompt_len = 1 + len(tok(item.prompt, add_special_tokens=False)["input_ids"])
        assert (row[:prompt_len] == -100).all()
    feats = torch.randn(3, 32, 24)
    with torch.no_grad():
        loss, logp = model(feats, text.ids, text.mask, text.labels)
        inp = model.inputs(feats, text.ids, text.mask)
        logits = model.logits(inp)[:, inp.visual :].float()
    manual = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), text.labels[:, 1:].reshape(-1))
    assert torch.allclose(loss, manual, atol=1e-5)
    # changing a question word changes nothing the loss sees except through the answer's context: the loss
    # with every answer label masked is zero, and the per-row log-likelihood sums exactly the answer tokens
    masked = torch.full_like(text.labels, -100)
    assert model(feats, text.ids, text.mask, masked)[0].item() == 0.0
    assert torch.allclose(-logp.sum() / (text.labels != -100).sum(), loss, atol=1e-5)


def test_lm_from_pretrained_folder(tok, tmp_path):
    lm = build_lm(TINY_LM, len(tok), 0, 2, 3)
    lm.save_pretrained(str(tmp_path / "lm"))
    again = build_lm(LMConfig(pretrained=str(tmp_path / "lm")), len(tok), 0, 2, 3)
    ref, got = lm.state_dict(), again.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    with pytest.raises(UserError, match="lm.pretrained"):
        build_lm(LMConfig(pretrained=str(tmp_path / "missing")), len(tok), 0, 2, 3)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="data.types"):
        load_config(QAConfig, None, ["data.types=[colour, weather]"])
    with pytest.raises(ConfigError, match="lm.heads"):
        load_config(QAConfig, None, ["lm.heads=5"])
    with pytest.raises(ConfigError, match="model.pooling"):
        load_config(QAConfig, None, ["model.pooling=max"])
    with pytest.raises(ConfigError, match="stage2.steps"):
        load_config(QAConfig, None, ["stage2.steps=-1"])


# ------------------------------------------------------------------ training, evaluation, commands


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run on the colour and count questions of 48 clips (packaged encoder, spatial pooling, tiny LM)."""
    root = tmp_path_factory.mktemp("qa")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    overrides = [
        f"out={root / 'run'}",
        f"data.cache_dir={root / 'cache'}",
        "data.train_clips=48",
        "data.test_clips=16",
        "data.types=[colour, count]",
        "encoder.init=pretrained",
        "model.pooling=spatial",
        "lm.hidden_size=48",
        "lm.layers=2",
        "lm.heads=2",
        "lm.intermediate_size=96",
        "stage1.steps=10",
        "stage2.steps=200",
        "stage2.lr=3e-3",
        "stage2.warmup=10",
        "batch_size=16",
        "log_every=10",
    ]
    cfg = load_config(QAConfig, None, overrides)
    train(cfg)
    torch.set_num_threads(n)
    return root / "run"


def test_training_learns_the_training_questions(tiny_run):
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    stage2 = [r["loss"] for r in rows if r["stage"] == "stage2"]
    assert all(np.isfinite(stage2)) and stage2[-1] < 0.5 * stage2[0], stage2
    loaded = load_run(tiny_run)
    assert loaded.steps == {"stage1": 10, "stage2": 200}
    ckpt = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    assert set(ckpt) >= {"pooler", "projector", "lm"} and ckpt["projector"]
    from vjepa2.qa.run import qa_set

    train_qa = qa_set(loaded.cfg, "train")
    feats = features_for(loaded.cfg, loaded.encoder, train_qa)
    scores = evaluate(loaded.model, loaded.tokenizer, train_qa, feats, loaded.cfg.dtype)
    assert scores.accuracy() > chance(train_qa).accuracy() + 30, scores.to_dict()  # measured: 93% vs 31%


def test_commands_missing_run_folder(tmp_path, capsys):
    assert main(["qa", "eval", str(tmp_path / "nope")]) == 2
    assert f"error: run folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    assert main(["ask", "clip.mp4", "how many objects are there?", "--run", str(tmp_path / "nope")]) == 2
    assert "error: run folder" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    assert main(["qa", "eval", str(tmp_path / "half")]) == 2
    assert "is not a finished video-QA run" in capsys.readouterr().err
    from vjepa2.commands import qa as qa_cmd

    parser = argparse.ArgumentParser()
    qa_cmd.add_args(parser)
    with pytest.raises(UserError, match="does not exist"):
        qa_cmd.run(parser.parse_args(["eval", str(tmp_path / "nope")]))


def test_eval_and_ask_commands(tiny_run, tmp_path, capsys):
    assert main(["qa", "eval", str(tiny_run), "--clips", "16"]) == 0
    out = capsys.readouterr().out
    assert "| count | mc |" in out and "| **overall** | all |" in out
    assert json.loads((tiny_run / "eval-test.json").read_text())["overall"] >= 0
    write_videos(tmp_path / "vids", 1, seed0=5, config=WorldConfig(frames=8))
    video = next((tmp_path / "vids" / "videos").glob("*.mp4"))
    assert main(["ask", str(video), "How many objects are there?", "--run", str(tiny_run)]) == 0
    assert capsys.readouterr().out.strip() in NUMBERS
    assert main(["ask", str(video), "how many objects are there?", "--run", str(tiny_run), "--options", "one,two"]) == 0
    assert capsys.readouterr().out.strip() in ("one", "two")
    assert main(["ask", str(tmp_path / "missing.mp4"), "how many?", "--run", str(tiny_run)]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["qa", "train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
