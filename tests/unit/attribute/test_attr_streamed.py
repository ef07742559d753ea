"""StreamedInfluence (chunked fit, streamed scores) == the in-memory BlockwiseAttributor(InfluenceAttributor),
from an in-memory source and from a store, for several dampings, query subsets and both solver regimes."""

import pytest
import torch

from grass.attribute.attributors import InfluenceAttributor
from grass.attribute.blockwise import BlockwiseAttributor
from grass.attribute.damping import select_damping
from grass.attribute.sources import InMemoryFeatures, StoreFeatures
from grass.attribute.streamed import StreamedInfluence
from grass.store import FeatureStore, chunk_ranges


def _blocks(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    train = {"a": torch.randn(n, 6, generator=gen) * 3.0, "b": torch.randn(n, 4, generator=gen)}
    query = {"a": torch.randn(7, 6, generator=gen), "b": torch.randn(7, 4, generator=gen)}
    return train, query


@pytest.mark.parametrize("n", [31, 5])  # DampedSolver's feature side (K <= n) and example side (K > n)
def test_streamed_influence_equals_the_blockwise_attributor(tmp_path, n):
    train, query = _blocks(n)
    reference = BlockwiseAttributor(InfluenceAttributor)
    reference.add_checkpoint(train, query)
    store = FeatureStore(tmp_path / "train", {"test": 1}, {"a": 6, "b": 4}, n, chunk_size=4)
    x = torch.cat([train["a"], train["b"]], dim=1)
    for c, a, b in chunk_ranges(n, 4):
        store.write(0, c, (a, b), x[a:b])
    for source in (InMemoryFeatures(train, query), StoreFeatures(store, query)):
        streamed = StreamedInfluence(source)
        for damping in (1e-4, 0.1, 10.0):
            for idx in (None, torch.tensor([5, 0, 3])):
                want = reference.scores(damping, idx)
                torch.testing.assert_close(streamed.scores(damping, idx), want, rtol=1e-4,
                                           atol=1e-5 * float(want.abs().max()))


def test_select_damping_picks_the_same_value_for_both():
    train, query = _blocks(40, seed=3)
    reference = BlockwiseAttributor(InfluenceAttributor)
    reference.add_checkpoint(train, query)
    streamed = StreamedInfluence(InMemoryFeatures(train, query))
    target = reference.scores(0.1)  # an objective maximized near damping 0.1

    def evaluate_on(idx):
        return lambda s: -float((s - target[:, idx]).abs().max())

    idx = torch.tensor([1, 2, 6])
    grid = [1e-3, 1e-2, 0.1, 1.0, 10.0]
    assert select_damping(streamed, grid, idx, evaluate_on(idx))[0] == select_damping(
        reference, grid, idx, evaluate_on(idx))[0] == 0.1
