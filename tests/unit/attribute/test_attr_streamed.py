"""StreamedAttributor (chunked fit, streamed scores) == the in-memory attributors:
BlockwiseAttributor(InfluenceAttributor) from an in-memory source and from a store, for several dampings, query
subsets and both solver regimes; TRAK over two checkpoints with its Q weights; influence averaged over
checkpoints."""

import pytest
import torch

from grass.attribute.attributors import InfluenceAttributor, TRAKAttributor
from grass.attribute.blockwise import BlockwiseAttributor
from grass.attribute.damping import select_damping
from grass.attribute.sources import InMemoryFeatures, StoreFeatures
from grass.attribute.streamed import StreamedAttributor
from grass.errors import GrassError
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
        streamed = StreamedAttributor(source)
        for damping in (1e-4, 0.1, 10.0):
            for idx in (None, torch.tensor([5, 0, 3])):
                want = reference.scores(damping, idx)
                torch.testing.assert_close(
                    streamed.scores(damping, idx), want, rtol=1e-4, atol=1e-5 * float(want.abs().max())
                )


def test_select_damping_picks_the_same_value_for_both():
    train, query = _blocks(40, seed=3)
    reference = BlockwiseAttributor(InfluenceAttributor)
    reference.add_checkpoint(train, query)
    streamed = StreamedAttributor(InMemoryFeatures(train, query))
    target = reference.scores(0.1)  # an objective maximized near damping 0.1

    def evaluate_on(idx):
        return lambda s: -float((s - target[:, idx]).abs().max())

    idx = torch.tensor([1, 2, 6])
    grid = [1e-3, 1e-2, 0.1, 1.0, 10.0]
    assert (
        select_damping(streamed, grid, idx, evaluate_on(idx))[0]
        == select_damping(reference, grid, idx, evaluate_on(idx))[0]
        == 0.1
    )


class _CountingSource(InMemoryFeatures):
    """Counts the passes over the train chunks (a store reads every shard once per pass)."""

    passes = 0

    def train_chunks(self):
        type(self).passes += 1
        return super().train_chunks()


def test_a_damping_grid_is_scored_in_one_pass_over_the_train():
    train, query = _blocks(33, seed=5)
    source = _CountingSource(train, query)
    streamed = StreamedAttributor(source)
    grid, idx = [1e-3, 0.1, 10.0], torch.tensor([4, 1])
    before = _CountingSource.passes
    many = streamed.scores_grid(grid, idx)
    assert _CountingSource.passes == before + 1
    assert list(many) == grid
    for lam in grid:
        torch.testing.assert_close(many[lam], streamed.scores(lam, idx))
    select_damping(streamed, grid, idx, lambda s: float(s.sum()))
    assert _CountingSource.passes == before + 1 + len(grid) + 1  # the scores() calls above, then one grid pass


def _checkpoints(n=30, k=8, count=2):
    gen = torch.Generator().manual_seed(11)
    train = [torch.randn(n, k, generator=gen) for _ in range(count)]
    query = [torch.randn(5, k, generator=gen) for _ in range(count)]
    q_weight = [torch.rand(n, generator=gen) for _ in range(count)]
    return train, query, q_weight


def test_streamed_trak_over_checkpoints_equals_the_trak_attributor():
    train, query, q_weight = _checkpoints()
    p = 1000
    reference = TRAKAttributor()
    for x, q, w in zip(train, query, q_weight):
        reference.add_checkpoint(x, q, train_weight=w, num_params=p)
    source = InMemoryFeatures(
        {f"ckpt{c}": x for c, x in enumerate(train)}, {f"ckpt{c}": q for c, q in enumerate(query)}
    )
    weight = (q_weight[0].double() + q_weight[1].double()) / 2 / 2  # mean Q over 2 checkpoints, / 2 checkpoints
    streamed = StreamedAttributor(source, "absolute", num_params=p, row_weight=weight)
    for damping in (1e-3, 0.1, 10.0):
        want = reference.scores(damping)
        torch.testing.assert_close(streamed.scores(damping), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_streamed_influence_over_checkpoints_is_their_mean():
    train, query, _ = _checkpoints(count=3)
    reference = InfluenceAttributor()
    for x, q in zip(train, query):
        reference.add_checkpoint(x, q)
    source = InMemoryFeatures(
        {f"ckpt{c}": x for c, x in enumerate(train)}, {f"ckpt{c}": q for c, q in enumerate(query)}
    )
    streamed = StreamedAttributor(source, row_weight=torch.full((30,), 1 / 3, dtype=torch.float64))
    want = reference.scores(0.1)
    torch.testing.assert_close(streamed.scores(0.1), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_streamed_attributor_refuses_bad_settings():
    source = InMemoryFeatures({"a": torch.randn(6, 2)}, {"a": torch.randn(2, 2)})
    with pytest.raises(GrassError, match="num_params > 0"):
        StreamedAttributor(source, "absolute")
    with pytest.raises(GrassError, match="damping_kind='none'"):
        StreamedAttributor(source, "none")
    with pytest.raises(GrassError, match=r"row_weight must be \[6\]"):
        StreamedAttributor(source, row_weight=torch.ones(5))
