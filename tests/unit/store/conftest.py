"""Fixtures for the feature-store tests: a small store layout and deterministic per-chunk features.

Helpers are fixtures (not imports) because tests run with --import-mode=importlib.
"""

import pytest
import torch

from grass.store import FeatureStore, chunk_ranges

FINGERPRINT = {"compressor": {"name": "sjlt", "proj_dim": 4096, "c": 1}, "model": {"name": "mlp"}, "seed": 0}
LAYERS = {"fc1": 6, "fc2": 3, "head": 2}  # D = 11


def _chunk_features(chunk_id: int, n: int, dim: int) -> torch.Tensor:
    # Depends only on the chunk id, so a rerun of a chunk is bit-identical (the SIGKILL test's script copies it).
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(1000 + chunk_id))


@pytest.fixture
def fingerprint_parts():
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in FINGERPRINT.items()}


@pytest.fixture
def make_store(tmp_path):
    """make_store(name="s", **overrides) -> FeatureStore under tmp_path (23 rows, chunks of 5, float32)."""

    def _make(name: str = "s", **kw):
        args = {"fingerprint": FINGERPRINT, "layers": LAYERS, "n_rows": 23, "chunk_size": 5, **kw}
        return FeatureStore(tmp_path / name, **args)

    return _make


@pytest.fixture
def expected():
    """expected(store) -> the full [n_rows, D] float32 tensor that fill() writes."""

    def _expected(store) -> torch.Tensor:
        return torch.cat([_chunk_features(c, b - a, store.dim)
                          for c, a, b in chunk_ranges(store.n_rows, store.chunk_size)])

    return _expected


@pytest.fixture
def fill(expected):
    """fill(store, worker=0, chunks=None) writes those chunks (all by default); returns the full expected tensor."""

    def _fill(store, worker: int = 0, chunks=None) -> torch.Tensor:
        full = expected(store)
        for c, a, b in chunk_ranges(store.n_rows, store.chunk_size):
            if chunks is None or c in chunks:
                store.write(worker, c, range(a, b), full[a:b])
        return full

    return _fill
