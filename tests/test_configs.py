"""Every shipped config parses into its dataclass, and overrides work."""

from pathlib import Path

import pytest

from vjepa2.config_io import load_config, save_config
from vjepa2.train.ac_config import ACTrainConfig
from vjepa2.train.pretrain_config import PretrainConfig

CONFIGS = sorted((Path(__file__).parent.parent / "configs" / "pretrain").glob("*.yaml"))
AC_CONFIGS = sorted((Path(__file__).parent.parent / "configs" / "ac").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_pretrain_configs_parse(path, tmp_path):
    cfg = load_config(PretrainConfig, path)
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(PretrainConfig, tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize("path", AC_CONFIGS, ids=[p.name for p in AC_CONFIGS])
def test_ac_configs_parse_and_anneal_inside_their_steps(path):
    cfg = load_config(ACTrainConfig, path)
    assert cfg.model.residual and cfg.optim.warmup + cfg.optim.anneal < cfg.optim.steps


def test_official_recipe_values():
    cfg = load_config(PretrainConfig, CONFIGS[0].parent / "vitg16-cooldown-384px-64f.yaml")
    assert (cfg.data.frames, cfg.data.crop, cfg.optim.schedule, cfg.model.encoder) == (
        64,
        384,
        "linear_decay",
        "vit_giant",
    )


def test_overrides_and_unknown_keys(tmp_path):
    cfg = load_config(
        PretrainConfig, None, ["optim.lr=3e-4", "data.datasets=[a.csv, b.csv]", "masks=[{num_blocks: 4}]"]
    )
    assert cfg.optim.lr == 3e-4 and cfg.data.datasets == ("a.csv", "b.csv") and cfg.masks[0].num_blocks == 4
    with pytest.raises(ValueError, match="optim.lrr"):
        load_config(PretrainConfig, None, ["optim.lrr=1"])


def test_demo_rebuilds_the_recipe_of_the_yaml_files():
    """``vjepa2 demo --from-scratch`` and configs/{pretrain,ac}/franka-reach.yaml are the same recipe."""
    from vjepa2.commands.demo import ac_config, pretrain_config

    root = CONFIGS[0].parent.parent
    data, pre, ac = Path("runs/x/data"), Path("runs/x/pre"), Path("runs/x/ac")
    paths = [f"data.datasets=[{data}]", f"run.out={pre}"]
    assert pretrain_config(pre, data) == load_config(PretrainConfig, root / "pretrain" / "franka-reach.yaml", paths)
    paths = [f"data.trajectories=[{data}]", f"run.out={ac}", f"model.encoder_weights={pre / 'latest.pt'}"]
    yaml_cfg = load_config(ACTrainConfig, root / "ac" / "franka-reach.yaml", paths)
    assert ac_config(ac, data, pre / "latest.pt") == yaml_cfg
