"""Stage `precondition`: per block P_b from every train shard, the row weights, and the damping lambda: chosen on
the validation queries or store.damping (grass.staged.damping).

tda=if_efim: P_b = (F_b + lambda trace(F_b) / K_b I)^-1, F_b = Phi_b^T Phi_b / n (SPEC 1.1), rows weighted 1 / C
over C checkpoints. tda=trak: P_b = s^2 (s^2 Phi_b^T Phi_b + lambda I)^-1 with s^2 = 1 / p, rows weighted by mean_c
Q_c / C, Q_c = 1 - p_c from the task target's trak_weight (SPEC 1.2). The math is
grass.attribute.streamed.StreamedAttributor over the store's shards (grass.attribute.gram: float64 Grams one chunk
at a time, one eigendecomposition per block, each damping of the grid a rescale), the code that fits pipeline=lds's
in-memory solver, so the staged scores equal pipeline=lds's at that damping. tda=grad_dot has no preconditioner:
this stage records that, writes nothing.
"""

import logging

import torch

from grass.artifacts import load_artifact, save_artifact
from grass.attribute.damping import select_damping
from grass.attribute.sources import StoreFeatures
from grass.attribute.streamed import StreamedAttributor
from grass.capture.flat import num_params
from grass.errors import GrassError
from grass.staged.cache import open_train_store
from grass.staged.damping import damping_mode
from grass.staged.layout import precondition_fingerprint, store_layout
from grass.staged.model import attribution_model
from grass.staged.profile import profiled
from grass.staged.queries import capture_queries
from grass.stages.attribute_flat import train_weights
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
    return StreamedAttributor(StoreFeatures(store)).inverses(damping)


def store_attributor(ctx: RunContext, source: StoreFeatures) -> StreamedAttributor:
    """This config's tda over the store (see the module docstring), fitted in one pass over the shards."""
    cfg, count = ctx.cfg, ctx.cfg.tda.num_checkpoints
    if cfg.tda.damping == "absolute":
        models = [attribution_model(ctx, c) for c in range(count)]
        q = sum(train_weights(ctx, m).double() for m in models) / count
        return StreamedAttributor(source, "absolute", num_params(models[0]), q / count)
    weight = None if count == 1 else torch.full((source.n_train,), 1.0 / count, dtype=torch.float64)
    return StreamedAttributor(source, "relative", row_weight=weight)


def choose_damping(ctx: RunContext, store: FeatureStore) -> tuple[StreamedAttributor, float, dict[float, float]]:
    """(fitted attributor, lambda, {lambda: validation LDS}) for this config's damping mode ("validation": every
    damping_grid value scored on the validation queries, one pass over the shards each; "fixed": store.damping)."""
    cfg = ctx.cfg
    if damping_mode(cfg) == "fixed":
        return store_attributor(ctx, StoreFeatures(store)), float(cfg.store.damping), {}
    queries = capture_queries(ctx)
    missing = set(store.layers) ^ set(queries.features)
    if missing:
        raise GrassError(f"query features cover layers {sorted(missing)} that the train store does not (or vice versa)")
    truth = run_groundtruth(ctx)
    influence = store_attributor(ctx, StoreFeatures(store, queries.features))
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
    save_artifact({"blocks": blocks, "damping": damping, "row_weight": influence.row_weight,
                   "val_lds": {str(k): v for k, v in curve.items()}}, path, precondition_fingerprint(ctx),
                  kind="preconditioner")
    log.info("precondition: %d layer blocks from %d train rows, damping %g -> %s", len(blocks), store.n_rows,
             damping, path)


def load_precondition(ctx: RunContext) -> dict:
    """{"blocks": {block: P_b [K_b, K_b] float64}, "damping": lambda, "row_weight": w [n] float64 or None (1),
    "val_lds": {lambda: LDS}} of this config."""
    path = store_layout(ctx).preconditioner
    return load_artifact(path, precondition_fingerprint(ctx),
                         hint="rerun stage=precondition (and the stages after it) for this config")
