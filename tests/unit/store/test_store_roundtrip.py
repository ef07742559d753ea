"""Round trips: float32 exact, bfloat16 bit-exact, layer slices, row selections, chunk iteration, bad writes."""

import pytest
import torch

from grass.errors import GrassError
from grass.store import FeatureStore


def test_float32_round_trip_is_exact(make_store, fill):
    store = make_store()
    full = fill(store)
    out = store.read()
    assert out.dtype == torch.float32 and out.shape == (23, 11)
    assert torch.equal(out, full)
    # A second object (another process, in effect) reads the same bytes.
    assert torch.equal(FeatureStore.open(store.path, store.layout.fingerprint).read(), full)


def test_bfloat16_round_trip_is_bit_exact(make_store, fill):
    store = make_store(dtype="bfloat16")
    full = fill(store)  # float32 in, rounded once to bf16
    out = store.read()
    assert out.dtype == torch.bfloat16
    assert torch.equal(out.view(torch.int16), full.to(torch.bfloat16).view(torch.int16))
    # bf16 written as bf16 keeps every bit, including values float32 -> bf16 would round differently.
    raw = torch.randint(-2**15, 2**15, (5, 11), dtype=torch.int16).view(torch.bfloat16)
    raw = torch.where(torch.isfinite(raw), raw, torch.zeros_like(raw))
    other = make_store("bits", dtype="bfloat16", n_rows=5)
    other.write(0, 0, (0, 5), raw)
    assert torch.equal(other.read().view(torch.int16), raw.view(torch.int16))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_layer_slice_matches_columns(make_store, fill, dtype):
    store = make_store(dtype=dtype)
    full = fill(store).to(torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    assert torch.equal(store.read(layer="fc1"), full[:, 0:6])
    assert torch.equal(store.read(layer="fc2"), full[:, 6:9])
    assert torch.equal(store.read(layer="head"), full[:, 9:11])
    assert torch.equal(store.read(range(3, 17), layer="fc2"), full[3:17, 6:9])
    with pytest.raises(GrassError, match="'nope'.*fc1"):
        store.read(layer="nope")


def test_rows_in_requested_order(make_store, fill):
    store = make_store()
    full = fill(store)
    idx = [22, 0, 7, 7, 13, 4, 5]  # across shards, repeated, unsorted
    assert torch.equal(store.read(idx), full[idx])
    assert torch.equal(store.read(torch.tensor(idx)), full[idx])
    for within_one_shard in ([8, 6, 5], [5, 7, 6, 8]):  # contiguous output positions, permuted shard rows
        assert torch.equal(store.read(within_one_shard), full[within_one_shard])
    assert torch.equal(store.read(range(4, 12)), full[4:12])
    assert store.read([]).shape == (0, 11)
    with pytest.raises(GrassError, match="range"):
        store.read((4, 12))
    with pytest.raises(GrassError, match=r"\[0, 23\)"):
        store.read([23])


def test_dict_features_are_concatenated_in_layer_order(make_store):
    store = make_store(n_rows=4, chunk_size=4)
    parts = {"fc1": torch.randn(4, 6), "fc2": torch.randn(4, 3), "head": torch.randn(4, 2)}
    store.write(0, 0, range(0, 4), parts)
    for name, value in parts.items():
        assert torch.equal(store.read(layer=name), value)
    with pytest.raises(GrassError, match="order"):
        store.write(0, 0, range(0, 4), dict(reversed(parts.items())))


def test_iter_chunks_in_row_order(make_store, fill):
    store = make_store()
    full = fill(store)
    chunks = list(store.iter_chunks())
    assert [(c.chunk_id, c.start, c.stop) for c in chunks] == [(0, 0, 5), (1, 5, 10), (2, 10, 15), (3, 15, 20),
                                                              (4, 20, 23)]
    assert torch.equal(torch.cat([c.features for c in chunks]), full)
    only = list(store.iter_chunks(layer="head", chunk_ids=[3]))
    assert len(only) == 1 and torch.equal(only[0].features, full[15:20, 9:11])


def test_incomplete_store_refuses_full_read(make_store, fill):
    store = make_store()
    full = fill(store, chunks={0, 1, 4})
    with pytest.raises(GrassError, match=r"missing rows \[10, 20\)"):
        store.read()
    with pytest.raises(GrassError, match="incomplete"):
        list(store.iter_chunks())
    assert torch.equal(store.read(range(0, 10)), full[:10])  # held rows stay readable
    with pytest.raises(GrassError, match="does not hold rows"):
        store.read([3, 12])


def test_bad_writes_are_refused(make_store):
    store = make_store()
    with pytest.raises(GrassError, match="chunk 1 .* not \\[6, 11\\)"):
        store.write(0, 1, range(6, 11), torch.zeros(5, 11))
    with pytest.raises(GrassError, match=r"\(5, 10\), expected \(5, 11\)"):
        store.write(0, 0, range(0, 5), torch.zeros(5, 10))
    bad = torch.zeros(5, 11)
    bad[3, 2] = float("nan")
    with pytest.raises(GrassError, match="row 3 .*non-finite"):
        store.write(0, 0, range(0, 5), bad)
    with pytest.raises(GrassError, match="floating-point"):
        store.write(0, 0, range(0, 5), torch.zeros(5, 11, dtype=torch.int64))
    assert not any(store.path.glob("shard-*"))
    with pytest.raises(GrassError, match="dtype"):
        make_store("x", dtype="float64")
