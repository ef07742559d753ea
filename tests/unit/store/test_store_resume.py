"""Resume: a crash at any point of a write leaves the chunk pending; rerunning pending chunks is bit-identical."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from grass.store import FeatureStore, pending_chunks


class Crash(BaseException):
    """Stands in for the process dying (not an Exception, so nothing on the way may swallow it)."""


def _resume(store, expected_full):
    for c, a, b in pending_chunks(store, 0, 1):
        store.write(0, c, range(a, b), expected_full[a:b])


@pytest.mark.parametrize("which", ["data", "manifest"])
def test_crash_at_rename_then_resume(make_store, fill, expected, monkeypatch, which):
    reference = make_store("reference")
    fill(reference)
    store = make_store()
    fill(store, chunks={0, 1})
    real_replace = os.replace

    def replace(src, dst):  # the temp file is fully written; the process dies before its rename
        if str(dst).endswith(f"shard-w000-c000002.{'npy' if which == 'data' else 'json'}"):
            raise Crash
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Crash):
        fill(store, chunks={2, 3})
    monkeypatch.setattr(os, "replace", real_replace)
    assert [c for c, _, _ in pending_chunks(store, 0, 1)] == [2, 3, 4]
    assert not any(store.path.glob(".*.tmp")) and not (store.path / "shard-w000-c000002.npy").exists()
    _resume(store, expected(store))
    assert pending_chunks(store, 0, 1) == []
    assert torch.equal(store.read(), reference.read())


def test_killed_after_data_rename_is_rewritten(make_store, fill, expected):
    """What SIGKILL between the two renames leaves: data without manifest (+ a stray temp); both get replaced."""
    store = make_store()
    full = fill(store)
    (store.path / "shard-w000-c000003.json").unlink()
    shard = store.path / "shard-w000-c000003.npy"
    shard.write_bytes(shard.read_bytes()[:100])  # even a torn data file: no manifest means "not done"
    (store.path / ".shard-w000-c000003.json.xyz.tmp").write_bytes(b"{")
    assert [c for c, _, _ in pending_chunks(store, 0, 1)] == [3]
    assert {p.name for p in store.verify().orphans} == {"shard-w000-c000003.npy", ".shard-w000-c000003.json.xyz.tmp"}
    _resume(store, expected(store))
    report = store.verify()
    assert report.ok and not report.orphans, report.describe()
    assert torch.equal(store.read(), full)


_WRITER = """
import sys, torch
from grass.store import FeatureStore, pending_chunks
store = FeatureStore(sys.argv[1], {"k": 1}, {"a": 700, "b": 324}, n_rows=6000, chunk_size=100)
for c, a, b in pending_chunks(store, 0, 1):
    x = torch.randn(b - a, store.dim, generator=torch.Generator().manual_seed(1000 + c))
    store.write(0, c, range(a, b), x)
"""


def _features(c, a, b, dim):
    return torch.randn(b - a, dim, generator=torch.Generator().manual_seed(1000 + c))


def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path):
    path = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while len(list(path.glob("*.json"))) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    store = FeatureStore(path, {"k": 1}, {"a": 700, "b": 324}, n_rows=6000, chunk_size=100)
    pending = pending_chunks(store, 0, 1)
    assert 0 < len(pending) < 60, "the writer was not killed mid-run; the test proves nothing"
    for c, a, b in pending:
        store.write(0, c, range(a, b), _features(c, a, b, store.dim))
    report = store.verify()
    assert report.ok and not report.orphans, report.describe()
    reference = torch.cat([_features(c, c * 100, c * 100 + 100, 1024) for c in range(60)])
    assert torch.equal(store.read(), reference)
