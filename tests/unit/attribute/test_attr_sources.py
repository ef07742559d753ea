"""Feature sources: in memory and on disk give the same chunks of per-block features, and the same fit."""

import pytest
import torch

from grass.attribute.gram import fit_block_eigens
from grass.attribute.sources import FLAT_BLOCK, InMemoryFeatures, StoreFeatures
from grass.errors import GrassError
from grass.store import FeatureStore, chunk_ranges

LAYERS = {"a": 5, "b": 3}


def _both(tmp_path, n=29, chunk=6):
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(0))
    q = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    store = FeatureStore(tmp_path / "train", {"test": 1}, LAYERS, n, chunk_size=chunk)
    for c, a, b in chunk_ranges(n, chunk):
        store.write(0, c, (a, b), x[a:b])
    blocks = {"a": x[:, :5], "b": x[:, 5:]}
    query = {"a": q[:, :5], "b": q[:, 5:]}
    return InMemoryFeatures(blocks, query), StoreFeatures(store, query), blocks


def test_in_memory_and_store_sources_give_the_same_rows_and_fit(tmp_path):
    memory, disk, blocks = _both(tmp_path)
    assert memory.blocks == disk.blocks == LAYERS and memory.n_train == disk.n_train == 29
    for source in (memory, disk):
        chunks = list(source.train_chunks())
        assert [c.start for c in chunks[1:]] == [c.stop for c in chunks[:-1]] and chunks[-1].stop == 29
        for name, x in blocks.items():
            assert torch.equal(torch.cat([c.features[name] for c in chunks]), x)
    fits = [fit_block_eigens(s.train_blocks(), s.blocks) for s in (memory, disk)]
    for name in LAYERS:
        torch.testing.assert_close(fits[0][name].inverse(1.0, 0.1), fits[1][name].inverse(1.0, 0.1),
                                   rtol=1e-12, atol=1e-12)
    assert torch.equal(memory.queries()["a"], disk.queries()["a"])


def test_in_memory_chunks_are_views():
    x = torch.randn(10, 3)
    (chunk,) = InMemoryFeatures.flat(x).train_chunks()
    assert chunk.features[FLAT_BLOCK].data_ptr() == x.data_ptr()


def test_sources_refuse_mismatched_blocks(tmp_path):
    with pytest.raises(GrassError, match="different blocks"):
        InMemoryFeatures({"a": torch.ones(2, 2)}, {"b": torch.ones(1, 2)})
    with pytest.raises(GrassError, match="different numbers of rows"):
        InMemoryFeatures({"a": torch.ones(2, 2), "b": torch.ones(3, 2)})
    with pytest.raises(GrassError, match="no query features"):
        InMemoryFeatures.flat(torch.ones(2, 2)).queries()
    _, disk, _ = _both(tmp_path)
    with pytest.raises(GrassError, match="query features cover"):
        StoreFeatures(disk.store, {"a": torch.ones(1, 5)})


def test_the_in_memory_attributors_consume_either_source(tmp_path):
    from grass.attribute.attributors import InfluenceAttributor
    from grass.attribute.blockwise import BlockwiseAttributor

    memory, disk, blocks = _both(tmp_path)
    assert memory.train("a").data_ptr() == blocks["a"].data_ptr()  # in memory: the tensor itself
    assert torch.equal(disk.train("b"), blocks["b"])
    results = []
    for source in (memory, disk):
        attributor = BlockwiseAttributor(InfluenceAttributor)
        attributor.add_source(source)
        results.append(attributor.scores(0.1))
    assert torch.equal(results[0], results[1])
    flat = InfluenceAttributor()
    flat.add_source(InMemoryFeatures.flat(blocks["a"], memory.queries()["a"]))
    with pytest.raises(GrassError, match="one flat block"):
        InfluenceAttributor().add_source(memory)
    with pytest.raises(GrassError, match="no block 'c'"):
        disk.train("c")
