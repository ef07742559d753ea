"""Corruption, fingerprint mismatch, disk full, and memory-mapped partial reads."""

import errno
import os
import tracemalloc

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from grass.errors import GrassError
from grass.fingerprint import describe_diff, flatten
from grass.store import FeatureStore
from grass.store.shard import HashingWriter


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["data", "header"])
def test_flipped_byte_names_the_shard(make_store, fill, where):
    store = make_store()
    fill(store)
    shard = store.path / "shard-w000-c000003.npy"
    _flip(shard, -3 if where == "data" else 20)
    fresh = FeatureStore.open(store.path, store.layout.fingerprint)
    with pytest.raises(GrassError, match="shard-w000-c000003.npy is corrupt"):
        fresh.read()
    with pytest.raises(GrassError, match="shard-w000-c000003.npy is corrupt"):
        list(fresh.iter_chunks())
    fresh.read(range(0, 15))  # other shards still read
    report = fresh.verify()
    assert len(report.corrupt) == 1 and "shard-w000-c000003.npy" in report.corrupt[0]


def test_verify_once_versus_always(make_store, fill):
    once, always = make_store(), make_store(verify="always")
    fill(once)
    once.read(), always.read()
    shard = once.path / "shard-w000-c000000.npy"
    stat = shard.stat()
    _flip(shard, -1)
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: "once" trusts its check
    once.read()
    with pytest.raises(GrassError, match="shard-w000-c000000.npy is corrupt"):
        always.read()


def test_truncated_shard_is_named(make_store, fill):
    store = make_store()
    fill(store)
    shard = store.path / "shard-w000-c000001.npy"
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(GrassError, match="shard-w000-c000001.npy has .* bytes, its manifest says"):
        FeatureStore.open(store.path, store.layout.fingerprint).read()


def test_fingerprint_mismatch_names_keys_and_values(make_store, fingerprint_parts):
    make_store()
    changed = dict(fingerprint_parts, compressor={"name": "gaussian", "proj_dim": 1024}, extra=3)
    with pytest.raises(GrassError) as info:
        make_store(fingerprint=changed)
    message = str(info.value)
    assert "compressor.proj_dim: cache=4096, now=1024" in message
    assert "compressor.name: cache=sjlt, now=gaussian" in message
    assert "compressor.c: cache=1, now=<absent>" in message
    assert "extra: cache=<absent>, now=3" in message
    assert "model.name" not in message  # unchanged keys are not listed
    with pytest.raises(GrassError, match="compressor.proj_dim: cache=4096, now=1024"):
        FeatureStore.open(make_store().path, changed)


def test_layout_mismatch_and_dictconfig_fingerprint(make_store, fingerprint_parts):
    make_store()
    with pytest.raises(GrassError, match="store.layers.fc2: cache=3, now=4"):
        make_store(layers={"fc1": 6, "fc2": 4, "head": 2})
    with pytest.raises(GrassError, match="store.chunk_size: cache=5, now=6"):
        make_store(chunk_size=6)
    make_store(fingerprint=OmegaConf.create(fingerprint_parts))  # same config as a DictConfig: accepted


def test_flatten_and_diff():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}
    assert describe_diff({"a": {"b": 1}}, {"a": {"b": 1}}) == []
    assert describe_diff({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == ["a.b: cache=[1, 2], now=[1, 3]"]


def _only_finished(store, chunks):
    names = {p.name for p in store.path.iterdir()}
    expected = {"store.json"} | {f"shard-w000-c{c:06d}.{ext}" for c in chunks for ext in ("npy", "json")}
    assert names == expected, names  # no partial shard, no temp file


def test_disk_full_during_data_write(make_store, fill, monkeypatch):
    store = make_store()
    full = fill(store, chunks={0})
    (store.path / "shard-w000-c000002.npy").write_bytes(b"unfinished earlier attempt")
    original, calls = HashingWriter.write, []

    def write_then_fail(self, data):
        calls.append(len(data))
        if len(calls) > 1:  # the header went out, then the disk fills up mid-data
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(HashingWriter, "write", write_then_fail)
    with pytest.raises(GrassError, match=r"disk full while writing .*shard-w000-c000002\.npy"):
        store.write(0, 2, range(10, 15), full[10:15])
    assert len(calls) == 2
    _only_finished(store, [0])
    assert not store.is_done(0, 2)


def test_disk_full_during_manifest_write(make_store, fill, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell which file an fsync is for")
    store = make_store()
    full = fill(store, chunks={0})
    real_fsync = os.fsync

    def fsync(fd):
        if ".json." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(GrassError, match=r"disk full while writing .*shard-w000-c000001\.json"):
        store.write(0, 1, range(5, 10), full[5:10])
    _only_finished(store, [0])  # the finished data file of chunk 1 was removed with its failed manifest


def test_one_row_read_is_memory_mapped(tmp_path, monkeypatch):
    rows, dim = 4096, 2048  # a 32 MiB shard
    store = FeatureStore(tmp_path / "big", {"k": 1}, {"all": dim}, n_rows=rows, chunk_size=rows)
    features = torch.arange(rows, dtype=torch.float32)[:, None] + torch.zeros(1, dim)
    store.write(0, 0, range(rows), features)
    modes, real_load = [], np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: modes.append(k.get("mmap_mode")) or real_load(*a, **k))
    fresh = FeatureStore.open(store.path, {"k": 1})
    tracemalloc.start()
    try:
        row = fresh.read([1234])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert modes == ["r"]
    assert torch.equal(row, features[1234:1235])
    assert peak < 4 * 2**20, f"reading one row allocated {peak / 2**20:.1f} MiB"  # checksum streams 1 MiB blocks
