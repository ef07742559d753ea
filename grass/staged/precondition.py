"""Stage `precondition`: per layer P_l = (F_l + lambda_l I)^-1 from every train shard (block-diagonal eFIM).

F_l = Phi_l^T Phi_l / n and lambda_l = damping * trace(F_l) / K_l: the relative damping of tda=if_efim
(grass.attribute.attributors.InfluenceAttributor), so the staged scores equal pipeline=lds's if_efim scores
at that damping. Gram matrices accumulate in float64, one chunk at a time.
"""

import logging

import torch
from tqdm.auto import tqdm

from grass.artifacts import load_artifact, save_artifact
from grass.attribute.gram import fit_block_eigens
from grass.attribute.sources import StoreFeatures
from grass.errors import GrassError
from grass.staged.cache import open_train_store
from grass.staged.layout import precondition_fingerprint, store_layout
from grass.staged.profile import profiled
from grass.stages.context import RunContext
from grass.store import FeatureStore

log = logging.getLogger(__name__)


def preconditioners(store: FeatureStore, damping: float) -> dict[str, torch.Tensor]:
    """{layer: (F_l + damping * trace(F_l) / K_l * I)^-1 [K_l, K_l] float64} over all rows of the store.

    The math is grass.attribute.gram's (the same fit and damping as pipeline=lds's if_efim); GrassError for a
    layer whose features are all zero or a damping <= 0."""
    if not damping > 0:
        raise GrassError(f"store.damping must be > 0 (relative damping), got {damping}")
    eigens = fit_block_eigens(tqdm(StoreFeatures(store).train_blocks(), total=-(-store.n_rows // store.chunk_size),
                                   desc="precondition", unit="chunk"), store.layers)
    out = {}
    for name, eigen in eigens.items():
        try:
            out[name] = eigen.relative_inverse(damping)
        except GrassError as e:
            raise GrassError(f"layer '{name}': {e}") from None
    return out


def run_precondition(ctx: RunContext) -> None:
    store = open_train_store(ctx)
    with profiled(ctx, "precondition", "rows") as box:
        blocks = preconditioners(store, ctx.cfg.store.damping)
        box["count"] = store.n_rows
    path = store_layout(ctx).preconditioner
    save_artifact({"blocks": blocks}, path, precondition_fingerprint(ctx), kind="preconditioner")
    log.info("precondition: %d layer blocks from %d train rows -> %s", len(blocks), store.n_rows, path)


def load_preconditioners(ctx: RunContext) -> dict[str, torch.Tensor]:
    path = store_layout(ctx).preconditioner
    saved = load_artifact(path, precondition_fingerprint(ctx),
                          hint="rerun stage=precondition (and the stages after it) for this config")
    return saved["blocks"]
