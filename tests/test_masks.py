import pytest
import torch

from vjepa2.masks import (
    OFFICIAL_MASKS,
    MaskConfig,
    MaskGenerator,
    MaskSampler,
    block_size,
    sample_batch,
    sample_masks,
    sample_target,
    token_grid,
)

GRID_256 = token_grid(16, 256)  # (8, 16, 16) = 2048 tokens
SMALL = token_grid(8, 64)  # (4, 4, 4)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_token_grid_and_official_configs():
    assert GRID_256 == (8, 16, 16)
    assert token_grid(64, 384) == (32, 24, 24)
    assert token_grid(16, (256, 320)) == (8, 16, 20)
    short, long = OFFICIAL_MASKS
    assert (short.num_blocks, short.spatial_scale, long.num_blocks, long.spatial_scale) == (
        8,
        (0.15,) * 2,
        2,
        (0.7,) * 2,
    )
    assert short.temporal_scale == long.temporal_scale == (1.0, 1.0) and short.aspect_ratio == (0.75, 1.5)


@pytest.mark.parametrize(
    "bad", [dict(num_blocks=0), dict(spatial_scale=(0.5, 0.2)), dict(max_temporal_keep=0.0), dict(max_keep=0)]
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        MaskConfig(**bad)


def test_block_size_matches_doc_examples():
    # keep = int(256 * 0.15) = 38 and int(256 * 0.7) = 179; h * w ~ keep with h / w in [0.75, 1.5]; tubes through time.
    for seed in range(50):
        t, h, w = block_size(OFFICIAL_MASKS[0], GRID_256, seed)
        assert t == 8 and 30 <= h * w <= 48 and 0.6 <= h / w <= 1.8
        t, h, w = block_size(OFFICIAL_MASKS[1], GRID_256, seed)
        assert t == 8 and 150 <= h * w <= 210
    assert block_size(OFFICIAL_MASKS[0], GRID_256, 3) == block_size(OFFICIAL_MASKS[0], GRID_256, 3)


@pytest.mark.parametrize("cfg", OFFICIAL_MASKS)
def test_masks_partition_grid_and_are_sorted(cfg):
    ctx, tgt = sample_batch(cfg, GRID_256, 6, seed=1, generator=_gen())
    n = 2048
    assert ctx.dtype == tgt.dtype == torch.int64 and ctx.shape[0] == tgt.shape[0] == 6
    for c, t in zip(ctx, tgt, strict=True):
        assert torch.all(c[1:] > c[:-1]) and torch.all(t[1:] > t[:-1])
        assert 0 <= int(c.min()) and int(torch.cat([c, t]).max()) < n
        assert not set(c.tolist()) & set(t.tolist())


def test_block_size_shared_positions_differ():
    cfg = MaskConfig(num_blocks=1, spatial_scale=(0.1, 0.3))  # one block: the target is exactly one tube
    size = block_size(cfg, GRID_256, 5)
    ctx, tgt = sample_batch(cfg, GRID_256, 8, seed=5, generator=_gen())
    assert tgt.shape[1] == size[0] * size[1] * size[2]  # no truncation: every sample has the same block size
    assert len({tuple(t.tolist()) for t in tgt}) > 1  # positions are drawn per sample


def test_counts_equal_batch_minimum():
    cfg = OFFICIAL_MASKS[0]
    size = block_size(cfg, GRID_256, 0)
    g1, g2 = _gen(3), _gen(3)
    full = [sample_target(cfg, GRID_256, size, g1).flatten() for _ in range(5)]
    ctx, tgt = sample_batch(cfg, GRID_256, 5, seed=0, generator=g2)
    assert ctx.shape[1] == min(int((~m).sum()) for m in full)
    assert tgt.shape[1] == min(int(m.sum()) for m in full)
    for c, t, m in zip(ctx, tgt, full, strict=True):  # the lowest indices are kept
        assert torch.equal(c, (~m).nonzero()[: ctx.shape[1], 0]) and torch.equal(t, m.nonzero()[: tgt.shape[1], 0])


def test_max_keep_caps_context():
    ctx, _ = sample_batch(MaskConfig(max_keep=50), GRID_256, 3, seed=0, generator=_gen())
    assert ctx.shape[1] == 50


def test_tubes_span_all_time():
    _, tgt = sample_batch(OFFICIAL_MASKS[0], GRID_256, 1, seed=0, generator=_gen())  # batch of one: no truncation
    mask = torch.zeros(2048, dtype=torch.bool)
    mask[tgt[0]] = True
    mask = mask.view(8, 16, 16)
    assert mask.any() and torch.equal(mask, mask[:1].expand_as(mask))  # the same footprint at every time step


def test_max_temporal_keep_limits_context_in_time():
    ctx, tgt = sample_batch(MaskConfig(max_temporal_keep=0.5), GRID_256, 4, seed=0, generator=_gen())
    assert int(ctx.max()) < 4 * 256  # the context never reaches the second half of the clip
    _, tgt = sample_batch(MaskConfig(max_temporal_keep=0.5), GRID_256, 1, seed=0, generator=_gen())
    assert set(range(4 * 256, 2048)) <= set(tgt[0].tolist())  # which is all target (batch of one: no truncation)


def test_full_complement_and_inverse():
    ctx, tgt = sample_batch(MaskConfig(full_complement=True), GRID_256, 3, seed=0, generator=_gen())
    for c, t in zip(ctx, tgt, strict=True):
        assert sorted(c.tolist() + t.tolist()) == list(range(2048))
    a = sample_batch(MaskConfig(), GRID_256, 3, seed=0, generator=_gen(1))
    b = sample_batch(MaskConfig(inv_block=True), GRID_256, 3, seed=0, generator=_gen(1))
    assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0])


def test_empty_context_is_redrawn():
    # 2x2 blocks on a 1x2x2 grid always cover everything: redraw would loop forever, so use 1x2 blocks on 1x2x2.
    cfg = MaskConfig(spatial_scale=(0.5, 0.5), aspect_ratio=(0.5, 0.5), num_blocks=2)
    ctx, tgt = sample_batch(cfg, (1, 2, 2), 32, seed=0, generator=_gen())
    assert ctx.shape[1] >= 1 and ctx.shape[1] + tgt.shape[1] == 4


def test_official_statistics_16f_256px():
    """Official table: mask 0 keeps ~24% (mean 492) and predicts ~47%; mask 1 keeps ~7% and predicts ~70%."""
    sampler, g = MaskSampler(OFFICIAL_MASKS, GRID_256), _gen()
    counts = torch.zeros(2, 2)
    n_batches = 200
    for _ in range(n_batches):
        for i, (ctx, tgt) in enumerate(sampler(24, g)):  # 24 = the official per-GPU batch
            counts[i] += torch.tensor([ctx.shape[1], tgt.shape[1]])
    frac = counts / n_batches / 2048
    assert abs(frac[0, 0] - 0.24) < 0.03 and abs(frac[0, 1] - 0.47) < 0.03
    assert abs(frac[1, 0] - 0.07) < 0.02 and abs(frac[1, 1] - 0.70) < 0.03


def test_determinism_and_resume():
    a = MaskSampler(OFFICIAL_MASKS, SMALL, seed=7)
    first = [a(4, _gen(i)) for i in range(6)]
    b = MaskSampler(OFFICIAL_MASKS, SMALL, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(sum(b(4, _gen(0)), ()), sum(first[0], ()), strict=True))
    resumed = MaskSampler(OFFICIAL_MASKS, SMALL)
    resumed.load_state_dict(a.state_dict() | {"step": 3})
    for i in range(3, 6):
        pairs = resumed(4, _gen(i))
        assert all(torch.equal(x, y) for x, y in zip(sum(pairs, ()), sum(first[i], ()), strict=True))
    assert resumed.state_dict() == a.state_dict() == {"step": 6, "seed": 7}
    c = MaskSampler(OFFICIAL_MASKS, SMALL, seed=7)
    c.advance(3)
    assert all(torch.equal(x, y) for x, y in zip(sum(c(4, _gen(3)), ()), sum(first[3], ()), strict=True))


def test_block_size_follows_step_counter():
    gen = MaskGenerator(MaskConfig(num_blocks=1, spatial_scale=(0.05, 0.5)), GRID_256)
    sizes = []
    for step in range(6):
        _, tgt = gen(1, _gen())
        t, h, w = block_size(gen.cfg, GRID_256, step)
        assert tgt.shape[1] == t * h * w
        sizes.append(tgt.shape[1])
    assert len(set(sizes)) > 1 and gen.step == 6


def test_global_rng_when_no_generator():
    torch.manual_seed(11)
    a = sample_masks(3, SMALL)
    torch.manual_seed(11)
    b = sample_masks(3, SMALL)
    assert len(a) == 2 and all(torch.equal(x, y) for x, y in zip(sum(a, ()), sum(b, ()), strict=True))


def test_masks_feed_the_encoder():
    from vjepa2.config import encoder_config, predictor_config
    from vjepa2.models.encoder import VisionTransformer
    from vjepa2.models.predictor import Predictor

    enc, pred = VisionTransformer(encoder_config("vit_test")), Predictor(predictor_config("vit_test"))
    video = torch.randn(2, 3, 4, 64, 64)
    for ctx, tgt in sample_masks(2, token_grid(4, 64), generator=_gen()):
        z = pred(enc(video, masks=ctx), ctx, tgt, mask_index=0)
        assert z.shape == (2, tgt.shape[1], enc.embed_dim)
