"""Stage `ifvp`: inverse-Fisher-vector products Phi_l P_l of this worker's train chunks into the ifvp store."""

import logging

import torch
from tqdm.auto import tqdm

from grass.staged.cache import open_train_store
from grass.staged.layout import precondition_fingerprint, store_layout
from grass.staged.precondition import load_preconditioners
from grass.staged.profile import profiled
from grass.stages.context import RunContext
from grass.store import FeatureStore, pending_chunks, resolve_worker

log = logging.getLogger(__name__)


def apply_preconditioners(features: torch.Tensor, store: FeatureStore, blocks: dict) -> dict[str, torch.Tensor]:
    """{layer: Phi_l P_l [rows, K_l] float32} for one chunk of train features [rows, D]."""
    x = features.double()
    return {name: (x[:, store.layer_slice(name)] @ blocks[name]).float() for name in store.layers}


def open_ifvp_store(ctx: RunContext, train: FeatureStore) -> FeatureStore:
    return FeatureStore(store_layout(ctx).ifvp, precondition_fingerprint(ctx), train.layers, train.n_rows,
                        dtype=ctx.cfg.store.dtype, chunk_size=train.chunk_size, verify=ctx.cfg.store.verify)


def run_ifvp(ctx: RunContext) -> None:
    worker, workers = resolve_worker(ctx.cfg.worker)
    train = open_train_store(ctx)
    blocks = load_preconditioners(ctx)
    out = open_ifvp_store(ctx, train)
    todo = pending_chunks(out, worker, workers)
    log.info("ifvp: worker %d/%d, %d chunks into %s", worker, workers, len(todo), out.path)
    with profiled(ctx, "ifvp", "rows") as box:
        for chunk in tqdm(train.iter_chunks(chunk_ids=[c for c, _, _ in todo]), total=len(todo),
                          desc=f"ifvp {worker}/{workers}", unit="chunk"):
            out.write(worker, chunk.chunk_id, (chunk.start, chunk.stop),
                      apply_preconditioners(chunk.features, train, blocks))
            box["count"] += chunk.stop - chunk.start
    ctx.metrics["store/ifvp_chunks_written"] = len(todo)
