"""Broken Hugging Face folders fail with a WeightsError that names the file at fault; shards stay in the folder."""

import json
import pickle

import pytest
import torch

from vjepa2.weights import WeightsError, load_encoder, save_hf


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    return save_hf(tmp_path / "hf", encoder=load_encoder("vit_test"))


def _load(folder):
    return load_encoder("vit_test", folder)


def test_good_folder_loads(folder):
    assert _load(folder) is not None


@pytest.mark.parametrize("damage", ["empty", "truncated", "pickle"])
def test_broken_weights_file_is_named(folder, damage):
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if damage == "empty":
        weights.write_bytes(b"")
    elif damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    else:
        weights.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="model.safetensors: not a readable safetensors file"):
        _load(folder)


def test_string_where_a_number_belongs_in_config_json(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["hidden_size"] = "48"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="config.json: hidden_size must be int-valued, got '48'"):
        _load(folder)


def _index(folder, content: str) -> None:
    (folder / "model.safetensors").rename(folder / "shard-1.safetensors")
    (folder / "model.safetensors.index.json").write_text(content)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not a valid safetensors index"), ('{"weight_map": 3}', "not a valid safetensors index"),
     ('{"weight_map": {"a": "../../outside.safetensors"}}', "lies outside the folder"),
     ('{"weight_map": {"a": "/etc/passwd"}}', "lies outside the folder"),
     ('{"weight_map": {"a": "missing.safetensors"}}', "is missing")],
)  # fmt: skip
def test_broken_or_escaping_index_is_refused(folder, content, message):
    _index(folder, content)
    with pytest.raises(WeightsError, match=message):
        _load(folder)


def test_valid_index_loads(folder):
    _index(folder, json.dumps({"weight_map": {"x": "shard-1.safetensors"}}))
    assert _load(folder) is not None
