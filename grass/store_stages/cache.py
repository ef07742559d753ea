"""Stage `cache`: compressed per-layer train features of this worker's chunks into the train store.

Resumable: only chunks no finished shard holds are computed (a killed run redoes its unfinished chunk).
"""

import logging

import torch
from tqdm.auto import tqdm

from grass.run_context import RunContext
from grass.store import FeatureStore, pending_chunks, resolve_worker
from grass.store_stages.featurizer import store_featurizer
from grass.store_stages.layout import cache_fingerprint, store_layout
from grass.store_stages.profile import profiled

log = logging.getLogger(__name__)


def open_train_store(ctx: RunContext, blocks: dict[str, int] | None = None, create: bool = False) -> FeatureStore:
    """The train feature store of this config (create: with these {block: K} widths); an existing store made by
    another config is refused."""
    cfg, path = ctx.cfg, store_layout(ctx).train
    if not create:
        return FeatureStore.open(path, cache_fingerprint(ctx), verify=cfg.store.verify)
    return FeatureStore(path, cache_fingerprint(ctx), blocks, ctx.task.n_train, dtype=cfg.store.dtype,
                        chunk_size=cfg.store.chunk_size, verify=cfg.store.verify)


def run_cache(ctx: RunContext) -> None:
    cfg = ctx.cfg
    worker, workers = resolve_worker(cfg.worker)
    featurizer = store_featurizer(ctx)
    store = open_train_store(ctx, featurizer.blocks, create=True)
    todo = pending_chunks(store, worker, workers)
    log.info("cache: worker %d/%d, %d chunks to compute into %s", worker, workers, len(todo), store.path)
    tokens_per_row = _tokens_per_row(ctx)
    with profiled(ctx, "cache", "tokens") as box:
        for chunk_id, start, stop in tqdm(todo, desc=f"cache {worker}/{workers}", unit="chunk"):
            feats = featurizer.rows("train", torch.arange(start, stop))
            store.write(worker, chunk_id, (start, stop), feats)
            box["count"] += tokens_per_row * (stop - start)
    ctx.metrics.update({"store/chunks_written": len(todo), "store/train_dim": store.dim,
                        "store/layers": len(featurizer.blocks)})


def _tokens_per_row(ctx: RunContext) -> int:
    return int(getattr(ctx.data, "block_size", 1) or 1)
