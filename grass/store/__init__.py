"""Feature store: sharded, resumable, fingerprinted per-example features (see feature_store.py for the layout)."""

from grass.store.feature_store import Chunk, FeatureStore
from grass.store.index import StoreReport
from grass.store.workers import chunk_ranges, parse_worker, pending_chunks, resolve_worker, worker_chunks

__all__ = ["Chunk", "FeatureStore", "StoreReport", "chunk_ranges", "parse_worker", "pending_chunks",
           "resolve_worker", "worker_chunks"]
