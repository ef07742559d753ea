"""Stage `ifvp`: inverse-Fisher-vector products w_i Phi_b P_b of this worker's train chunks into the ifvp store
(P_b and the row weights w of grass.store_stages.precondition).

tda=grad_dot has no preconditioner (P = I): its later stages score the train features themselves
(`scored_store`), and this stage writes nothing.
"""

import logging

from tqdm.auto import tqdm

from grass.attribute.sources import StoreFeatures
from grass.attribute.streamed import apply_inverses
from grass.run_context import RunContext
from grass.store import FeatureStore, pending_chunks, resolve_worker
from grass.store_stages.cache import open_train_store
from grass.store_stages.damping import damping_mode
from grass.store_stages.layout import precondition_fingerprint, store_layout
from grass.store_stages.precondition import load_precondition
from grass.store_stages.profile import profiled

log = logging.getLogger(__name__)


def open_ifvp_store(ctx: RunContext, train: FeatureStore) -> FeatureStore:
    return FeatureStore(store_layout(ctx).ifvp, precondition_fingerprint(ctx), train.layers, train.n_rows,
                        dtype=ctx.cfg.store.dtype, chunk_size=train.chunk_size, verify=ctx.cfg.store.verify)


def scored_store(ctx: RunContext, train: FeatureStore) -> FeatureStore:
    """What the queries are scored against: the iFVP store, or for tda=grad_dot (no preconditioner) the train
    features themselves."""
    return train if damping_mode(ctx.cfg) == "none" else open_ifvp_store(ctx, train)


def run_ifvp(ctx: RunContext) -> None:
    if damping_mode(ctx.cfg) == "none":
        log.info("ifvp: tda=%s has no preconditioner; the train features are scored as they are", ctx.cfg.tda.name)
        ctx.metrics["store/ifvp_chunks_written"] = 0
        return
    worker, workers = resolve_worker(ctx.cfg.worker)
    train = open_train_store(ctx)
    saved = load_precondition(ctx)
    blocks, weight = saved["blocks"], saved["row_weight"]
    out = open_ifvp_store(ctx, train)
    todo = pending_chunks(out, worker, workers)
    log.info("ifvp: worker %d/%d, %d chunks into %s", worker, workers, len(todo), out.path)
    source = StoreFeatures(train)
    with profiled(ctx, "ifvp", "rows") as box:
        for chunk in tqdm(source.train_chunks(chunk_ids=[c for c, _, _ in todo]), total=len(todo),
                          desc=f"ifvp {worker}/{workers}", unit="chunk"):
            rows_weight = None if weight is None else weight[chunk.start:chunk.stop]
            out.write(worker, chunk.chunk_id, (chunk.start, chunk.stop),
                      apply_inverses(chunk.features, blocks, rows_weight))
            box["count"] += chunk.stop - chunk.start
    ctx.metrics["store/ifvp_chunks_written"] = len(todo)
