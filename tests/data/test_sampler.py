import numpy as np
import pytest

from vjepa2.data.sampler import DistributedWeightedSampler, DrawKey


def _mixture_weights(sizes=(2, 8, 5), weights=(0.5, 0.3, 0.2)):
    return np.concatenate([np.full(n, w / n) for n, w in zip(sizes, weights, strict=True)])


def test_empirical_frequencies_match_w_over_n():
    w = _mixture_weights()
    sampler = DistributedWeightedSampler(w, samples_per_epoch=60_000, seed=1)
    counts = np.bincount(list(sampler), minlength=len(w))
    freq = counts / counts.sum()
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.006)
    per_source = [freq[:2].sum(), freq[2:10].sum(), freq[10:].sum()]
    np.testing.assert_allclose(per_source, [0.5, 0.3, 0.2], atol=0.01)


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_shards_partition_the_single_process_draw(world_size):
    w, total = _mixture_weights(), 24
    single = DistributedWeightedSampler(w, samples_per_epoch=total, seed=5, yield_keys=True)
    shards = [
        list(DistributedWeightedSampler(w, total, rank=r, world_size=world_size, seed=5, yield_keys=True))
        for r in range(world_size)
    ]
    positions = [{k.position for k in shard} for shard in shards]
    assert all(len(shard) == total // world_size for shard in shards)
    assert all(not (positions[a] & positions[b]) for a in range(world_size) for b in range(a + 1, world_size))
    assert sorted((k for shard in shards for k in shard), key=lambda k: k.position) == list(single)


def test_keys_and_plain_indices_agree():
    w = _mixture_weights()
    keyed = list(DistributedWeightedSampler(w, seed=2, yield_keys=True))
    assert all(isinstance(k, DrawKey) and k.epoch == 0 for k in keyed)
    assert [k.index for k in keyed] == list(DistributedWeightedSampler(w, seed=2))
    assert [k.position for k in keyed] == list(range(len(w)))


def test_set_epoch_changes_the_draw_reproducibly():
    sampler = DistributedWeightedSampler(np.ones(100), seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    assert second == list(DistributedWeightedSampler(np.ones(100), seed=1))  # default_rng(seed + epoch)
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_start_index_resumes_mid_epoch():
    sampler = DistributedWeightedSampler(np.ones(50), rank=1, world_size=2, seed=3, yield_keys=True)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_epoch(4, start_index=10)
    assert len(sampler) == 15 and list(sampler) == full[10:]
    sampler.set_epoch(5)
    assert len(sampler) == 25


def test_samples_per_epoch_rounds_up_to_world_size():
    sampler = DistributedWeightedSampler(np.ones(10), samples_per_epoch=7, rank=0, world_size=3)
    assert len(sampler) == 3 and sampler.total_size == 9


def test_validation():
    with pytest.raises(ValueError, match="rank"):
        DistributedWeightedSampler(np.ones(4), rank=2, world_size=2)
    with pytest.raises(ValueError, match="empty"):
        DistributedWeightedSampler([])
    with pytest.raises(ValueError, match="zero"):
        DistributedWeightedSampler(np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        DistributedWeightedSampler([1.0, -1.0])
    with pytest.raises(ValueError, match="start_index"):
        DistributedWeightedSampler(np.ones(4)).set_epoch(0, start_index=5)
