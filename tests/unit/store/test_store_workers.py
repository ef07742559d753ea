"""Worker specs, the chunk grid, worker splits, resume lists, and duplicate protection across workers."""

import shutil

import pytest
import torch

from grass.errors import GrassError
from grass.store import chunk_ranges, parse_worker, pending_chunks, worker_chunks


@pytest.mark.parametrize("spec, expected", [("0/1", (0, 1)), ("3/4", (3, 4)), (" 2 / 8 ", (2, 8))])
def test_parse_worker(spec, expected):
    assert parse_worker(spec) == expected


@pytest.mark.parametrize("spec, message", [("4/4", "0 <= i < N"), ("0/0", "N >= 1"), ("1", "i/N"),
                                           ("-1/4", "i/N"), ("a/b", "i/N"), (3, "i/N"), (None, "i/N")])
def test_parse_worker_errors(spec, message):
    with pytest.raises(GrassError, match=message):
        parse_worker(spec)


def test_chunk_ranges():
    assert chunk_ranges(23, 5) == [(0, 0, 5), (1, 5, 10), (2, 10, 15), (3, 15, 20), (4, 20, 23)]
    assert chunk_ranges(10, 5) == [(0, 0, 5), (1, 5, 10)]
    assert chunk_ranges(0, 5) == []
    with pytest.raises(GrassError, match="chunk_size"):
        chunk_ranges(10, 0)


@pytest.mark.parametrize("n_rows", [0, 1, 9, 23, 100])
@pytest.mark.parametrize("chunk_size", [1, 4, 7])
@pytest.mark.parametrize("num_workers", [1, 2, 3, 8])
def test_worker_chunks_partition_the_grid(n_rows, chunk_size, num_workers):
    parts = [worker_chunks(n_rows, chunk_size, w, num_workers) for w in range(num_workers)]
    flat = [item for part in parts for item in part]
    assert flat == chunk_ranges(n_rows, chunk_size)  # every chunk once, in order, blocks contiguous
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_two_workers_give_every_row_exactly_once(make_store, fill, expected):
    store = make_store()
    full = expected(store)
    for worker in range(2):
        for c, a, b in worker_chunks(store.n_rows, store.chunk_size, worker, 2):
            store.write(worker, c, range(a, b), full[a:b])
    report = store.verify()
    assert report.ok and not report.orphans, report.describe()
    assert {s.worker for s in report.shards} == {0, 1}
    assert sorted((s.start, s.stop) for s in report.shards) == [(a, b) for _, a, b in chunk_ranges(23, 5)]
    assert torch.equal(store.read(), full)


def test_pending_chunks_resume_and_changed_worker_count(make_store, fill):
    store = make_store()
    fill(store, worker=0, chunks={0, 1})
    assert [c for c, _, _ in pending_chunks(store, 0, 1)] == [2, 3, 4]
    assert store.is_done(0, 1) and not store.is_done(1, 1) and not store.is_done(0, 2)
    # Rerun with 2 workers: worker 1's block is chunks 3, 4; worker 0's remaining is chunk 2 only.
    assert [c for c, _, _ in pending_chunks(store, 0, 2)] == [2]
    assert [c for c, _, _ in pending_chunks(store, 1, 2)] == [3, 4]


def test_second_writer_of_a_chunk_is_refused(make_store, fill):
    store = make_store()
    full = fill(store, worker=0, chunks={2})
    with pytest.raises(GrassError, match="chunk 2 is already stored as shard-w000-c000002.json"):
        store.write(1, 2, range(10, 15), full[10:15])
    store.write(0, 2, range(10, 15), full[10:15])  # the same worker may rewrite its own chunk


def test_verify_reports_duplicates_missing_and_orphans(make_store, fill):
    store = make_store()
    fill(store, chunks={0, 1, 2, 4})
    # A copied shard (as if two runs with different worker ids both wrote chunk 1).
    for ext in ("npy", "json"):
        shutil.copy(store.path / f"shard-w000-c000001.{ext}", store.path / f"shard-w005-c000001.{ext}")
    manifest = (store.path / "shard-w005-c000001.json")
    manifest.write_text(manifest.read_text().replace('"worker": 0', '"worker": 5')
                        .replace("shard-w000-c000001.npy", "shard-w005-c000001.npy"))
    (store.path / "shard-w000-c000004.json").unlink()  # data without manifest = unfinished
    (store.path / ".shard-w000-c000003.npy.abc.tmp").write_bytes(b"partial")
    report = store.verify()
    assert not report.ok
    assert report.missing == [(15, 23)]
    assert report.duplicated == [(5, 10, ["shard-w000-c000001.npy", "shard-w005-c000001.npy"])]
    assert sorted(p.name for p in report.orphans) == [".shard-w000-c000003.npy.abc.tmp", "shard-w000-c000004.npy"]
    with pytest.raises(GrassError, match="duplicated rows"):
        store.read(range(0, 3))
    with pytest.raises(GrassError, match="duplicated rows"):
        list(store.iter_chunks(chunk_ids=[1]))
