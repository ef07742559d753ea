"""Stage `precondition`: per layer P_l = (F_l + lambda_l I)^-1 from every train shard (block-diagonal eFIM), and
the damping lambda: chosen on the validation queries or store.damping (grass.staged.damping).

F_l = Phi_l^T Phi_l / n and lambda_l = lambda * trace(F_l) / K_l: the relative damping of tda=if_efim. The math is
grass.attribute.streamed.StreamedInfluence over the store's shards (grass.attribute.gram: float64 Grams one chunk
at a time, one eigendecomposition per layer, each damping of the grid a rescale), the same code that fits
pipeline=lds's in-memory solver, so the staged scores equal pipeline=lds's if_efim scores at that damping.
tda=grad_dot has no preconditioner: this stage records that and writes nothing.
"""

import logging

import torch

from grass.artifacts import load_artifact, save_artifact
from grass.attribute.damping import select_damping
from grass.attribute.sources import StoreFeatures
from grass.attribute.streamed import StreamedInfluence
from grass.errors import GrassError
from grass.staged.cache import open_train_store
from grass.staged.damping import damping_mode
from grass.staged.layout import precondition_fingerprint, store_layout
from grass.staged.profile import profiled
from grass.staged.queries import capture_queries
from grass.stages.context import RunContext
from grass.stages.evaluate import record_damping, validation_objective
from grass.stages.groundtruth import run_groundtruth
from grass.store import FeatureStore

log = logging.getLogger(__name__)


def preconditioners(store: FeatureStore, damping: float) -> dict[str, torch.Tensor]:
    """{layer: (F_l + damping * trace(F_l) / K_l * I)^-1 [K_l, K_l] float64} over all rows of the store.

    GrassError for a layer whose features are all zero or a damping <= 0."""
    if not damping > 0:
        raise GrassError(f"store.damping must be > 0 (relative damping), got {damping}")
    return StreamedInfluence(StoreFeatures(store)).inverses(damping)


def choose_damping(ctx: RunContext, store: FeatureStore) -> tuple[StreamedInfluence, float, dict[float, float]]:
    """(fitted influence, lambda, {lambda: validation LDS}) for this config's damping mode ("validation": every
    damping_grid value scored on the validation queries, one pass over the shards each; "fixed": store.damping)."""
    cfg = ctx.cfg
    if damping_mode(cfg) == "fixed":
        return StreamedInfluence(StoreFeatures(store)), float(cfg.store.damping), {}
    queries = capture_queries(ctx)
    missing = set(store.layers) ^ set(queries.features)
    if missing:
        raise GrassError(f"query features cover layers {sorted(missing)} that the train store does not (or vice versa)")
    truth = run_groundtruth(ctx)
    influence = StreamedInfluence(StoreFeatures(store, queries.features))
    val_idx, evaluate = validation_objective(ctx, truth)
    with ctx.timed("time/damping_search_s"):
        chosen, curve = select_damping(influence, list(cfg.damping_grid), val_idx, evaluate)
    log.info("precondition: damping %g chosen on %d validation queries", chosen, len(val_idx))
    return influence, chosen, curve


def run_precondition(ctx: RunContext) -> None:
    if damping_mode(ctx.cfg) == "none":
        log.info("precondition: tda=%s has no preconditioner (Hessian = identity); nothing to do", ctx.cfg.tda.name)
        ctx.metrics["damping/chosen"] = None
        return
    store = open_train_store(ctx)
    with profiled(ctx, "precondition", "rows") as box:
        influence, damping, curve = choose_damping(ctx, store)
        blocks = influence.inverses(damping)
        box["count"] = store.n_rows
    record_damping(ctx, damping, curve)
    path = store_layout(ctx).preconditioner
    save_artifact({"blocks": blocks, "damping": damping, "val_lds": {str(k): v for k, v in curve.items()}}, path,
                  precondition_fingerprint(ctx), kind="preconditioner")
    log.info("precondition: %d layer blocks from %d train rows, damping %g -> %s", len(blocks), store.n_rows,
             damping, path)


def load_precondition(ctx: RunContext) -> dict:
    """{"blocks": {layer: P_l [K_l, K_l] float64}, "damping": lambda, "val_lds": {lambda: LDS}} of this config."""
    path = store_layout(ctx).preconditioner
    return load_artifact(path, precondition_fingerprint(ctx),
                         hint="rerun stage=precondition (and the stages after it) for this config")
