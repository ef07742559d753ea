"""The staged pipeline's math on synthetic stores: precondition + ifvp + streamed scores equal the in-memory
block-diagonal if_efim attributor, top-k is the exact top-k, self-influence is the diagonal, budget refusals."""

import pytest
import torch

from grass.attribute.attributors import InfluenceAttributor
from grass.attribute.blockwise import BlockwiseAttributor
from grass.attribute.sources import StoreFeatures
from grass.attribute.streamed import apply_inverses
from grass.errors import GrassError
from grass.store import FeatureStore, chunk_ranges
from grass.store_stages.attribute import TopK, block_rows, stream_scores
from grass.store_stages.precondition import preconditioners

LAYERS = {"a": 6, "b": 4}


def _filled(path, n=37, chunk=8, seed=0, dtype="float32") -> tuple[FeatureStore, torch.Tensor]:
    store = FeatureStore(path, {"test": 1}, LAYERS, n, chunk_size=chunk, dtype=dtype)
    x = torch.randn(n, sum(LAYERS.values()), generator=torch.Generator().manual_seed(seed))
    x[:, :6] *= 3.0  # layers of different scale: per-layer relative damping matters
    for c, a, b in chunk_ranges(n, chunk):
        store.write(0, c, (a, b), x[a:b])
    return store, x


def _staged_scores(tmp_path, store, q, damping):
    blocks = preconditioners(store, damping)
    ifvp = FeatureStore(tmp_path / "ifvp", {"test": 2}, LAYERS, store.n_rows, chunk_size=store.chunk_size,
                        dtype=store.layout.dtype)
    for chunk in StoreFeatures(store).train_chunks():
        ifvp.write(0, chunk.chunk_id, (chunk.start, chunk.stop), apply_inverses(chunk.features, blocks))
    out = FeatureStore(tmp_path / "scores", {"test": 3}, {"scores": q.shape[0]}, store.n_rows,
                       chunk_size=store.chunk_size)
    top = TopK(3, q.shape[0])
    rows = stream_scores(ifvp, q, out, top, budget_gb=1.0)
    return out, top, rows, ifvp


@pytest.mark.parametrize("damping", [1e-3, 0.1, 10.0])
def test_staged_scores_equal_the_blockwise_if_efim_attributor(tmp_path, damping):
    store, x = _filled(tmp_path / "train")
    q = torch.randn(5, 10, generator=torch.Generator().manual_seed(9))
    out, _, rows, _ = _staged_scores(tmp_path, store, q, damping)
    assert rows == 37
    reference = BlockwiseAttributor(InfluenceAttributor)
    reference.add_checkpoint({"a": x[:, :6], "b": x[:, 6:]}, {"a": q[:, :6], "b": q[:, 6:]})
    torch.testing.assert_close(out.read(), reference.scores(damping), rtol=1e-4, atol=1e-5)


def test_top_k_is_the_exact_top_k_both_ways(tmp_path):
    store, _ = _filled(tmp_path / "train")
    q = torch.randn(4, 10, generator=torch.Generator().manual_seed(2))
    out, top, _, _ = _staged_scores(tmp_path, store, q, 0.1)
    full = out.read()
    high, low = torch.topk(full, 3, dim=0), torch.topk(full, 3, dim=0, largest=False)
    torch.testing.assert_close(top.high[0], high.values)
    torch.testing.assert_close(top.low[0], low.values)
    assert torch.equal(top.high[1], high.indices) and torch.equal(top.low[1], low.indices)


def test_a_rerun_reads_finished_score_chunks_back(tmp_path):
    store, _ = _filled(tmp_path / "train")
    q = torch.randn(3, 10, generator=torch.Generator().manual_seed(4))
    out, top, _, ifvp = _staged_scores(tmp_path, store, q, 0.1)
    again = TopK(3, 3)
    assert stream_scores(ifvp, q, out, again, budget_gb=1.0) == 0  # nothing left to score
    assert torch.equal(again.high[1], top.high[1]) and torch.equal(again.low[0], top.low[0])


def test_precondition_refuses_an_all_zero_layer(tmp_path):
    store = FeatureStore(tmp_path / "z", {"test": 1}, LAYERS, 4, chunk_size=4)
    x = torch.randn(4, 10)
    x[:, 6:] = 0.0
    store.write(0, 0, (0, 4), x)
    with pytest.raises(GrassError, match="layer 'b'.*zero"):
        preconditioners(store, 0.1)
    with pytest.raises(GrassError, match="damping must be > 0"):
        preconditioners(store, 0.0)


def test_the_budget_sets_the_block_and_a_too_small_one_names_the_setting():
    # 100 queries x 1000 features: 0.4 MB of queries; each row of a block costs 2 x (1000 + 100) x 4 bytes
    assert block_rows(n_query=100, dim=1000, chunk_rows=64, budget_gb=0.01) == (10_000_000 // 4 - 100_000) // 2200
    assert block_rows(n_query=100, dim=1000, chunk_rows=64, budget_gb=1.0) > 100 * block_rows(100, 1000, 64, 0.01)
    with pytest.raises(GrassError, match="store.memory_budget_gb=0.001.*store.chunk_size"):
        block_rows(n_query=10_000, dim=1000, chunk_rows=1024, budget_gb=0.001)


@pytest.mark.parametrize("budget_gb", [1.0, 1.3e-6])  # every chunk in one block / one chunk per block
def test_blocks_of_several_chunks_or_one_give_the_same_scores(tmp_path, budget_gb):
    store, _ = _filled(tmp_path / "train")
    q = torch.randn(3, 10, generator=torch.Generator().manual_seed(6))
    reference, _, _, ifvp = _staged_scores(tmp_path, store, q, 0.1)
    chunks_per_block = block_rows(3, 10, 8, budget_gb) // 8
    assert chunks_per_block == 1 if budget_gb < 1e-3 else chunks_per_block >= 5
    out = FeatureStore(tmp_path / f"scores{budget_gb}", {"test": 3}, {"scores": 3}, 37, chunk_size=8)
    assert stream_scores(ifvp, q, out, TopK(2, 3), budget_gb) == 37
    torch.testing.assert_close(out.read(), reference.read(), rtol=1e-6, atol=1e-6)


def test_bfloat16_stores_give_the_float32_scores_to_bf16_precision(tmp_path):
    q = torch.randn(4, 10, generator=torch.Generator().manual_seed(5))
    full, _ = _filled(tmp_path / "f32" / "train")
    half, _ = _filled(tmp_path / "bf16" / "train", dtype="bfloat16")
    assert half.read().dtype == torch.bfloat16
    reference = _staged_scores(tmp_path / "f32", full, q, 0.1)[0].read()
    scores = _staged_scores(tmp_path / "bf16", half, q, 0.1)[0].read()
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, reference, rtol=0.05, atol=0.05 * float(reference.abs().max()))
