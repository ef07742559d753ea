"""Splitting rows into chunks and chunks among workers (`worker=i/N`), and what is left to do on resume.

The chunk grid depends only on (n_rows, chunk_size): chunk c holds rows [c * chunk_size, min(n_rows,
(c + 1) * chunk_size)). Worker i of N gets a contiguous block of whole chunks, so two workers never
share a chunk and the N blocks cover every chunk.
"""

import os
import re

from grass.errors import GrassError

_WORKER = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_worker(spec: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N; anything else is a GrassError saying what is expected."""
    match = _WORKER.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise GrassError(f"worker={spec!r} is not of the form i/N (e.g. worker=0/4 for the first of four "
                         f"workers; worker=0/1 runs everything in one process)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise GrassError(f"worker={spec!r}: need N >= 1 and 0 <= i < N (workers are numbered 0..N-1)")
    return index, count


def resolve_worker(spec: str) -> tuple[int, int]:
    """parse_worker, plus worker=rank: this process's RANK / WORLD_SIZE under torch.distributed (torchrun)."""
    if spec != "rank":
        return parse_worker(spec)
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or world is None:
        raise GrassError("worker=rank takes this process's share from RANK and WORLD_SIZE, which torchrun sets; "
                         "launch with `torchrun --nproc_per_node N run.py ...` or give worker=i/N")
    return parse_worker(f"{rank}/{world}")


def chunk_ranges(n_rows: int, chunk_size: int) -> list[tuple[int, int, int]]:
    """[(chunk_id, start, stop)] covering rows [0, n_rows) in order; the last chunk may be shorter."""
    if int(n_rows) != n_rows or n_rows < 0:
        raise GrassError(f"n_rows must be a non-negative integer, got {n_rows}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise GrassError(f"chunk_size must be a positive integer, got {chunk_size}")
    return [(c, start, min(start + chunk_size, n_rows)) for c, start in enumerate(range(0, n_rows, chunk_size))]


def worker_chunks(n_rows: int, chunk_size: int, worker: int, num_workers: int) -> list[tuple[int, int, int]]:
    """Worker `worker`'s contiguous block of chunks: sizes differ by at most one chunk across workers.

    With more workers than chunks the last workers get nothing (an empty list, not an error).
    """
    if not 0 <= worker < num_workers:
        raise GrassError(f"worker {worker} out of range for {num_workers} workers")
    chunks = chunk_ranges(n_rows, chunk_size)
    base, extra = divmod(len(chunks), num_workers)
    begin = worker * base + min(worker, extra)
    return chunks[begin:begin + base + (worker < extra)]


def pending_chunks(store, worker: int, num_workers: int) -> list[tuple[int, int, int]]:
    """The worker's chunks that no finished shard holds yet (resume: run exactly these).

    A chunk finished by another worker index (an earlier run with a different N) counts as done, so
    changing N between runs never writes the same rows twice.
    """
    done = store.done_chunks()
    return [item for item in worker_chunks(store.n_rows, store.chunk_size, worker, num_workers)
            if item[0] not in done]
