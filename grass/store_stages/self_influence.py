"""Stage `self_influence`: <Phi(i), Phi(i) P> for every train example (SPEC 1.1 step 5), streamed over the train
and iFVP shards (tda=grad_dot: P = I, <Phi(i), Phi(i)>)."""

import logging

import torch

from grass.artifacts import save_artifact
from grass.run_context import RunContext
from grass.store_stages.cache import open_train_store
from grass.store_stages.ifvp import scored_store
from grass.store_stages.layout import precondition_fingerprint, store_layout
from grass.store_stages.profile import profiled

log = logging.getLogger(__name__)


def run_self_influence(ctx: RunContext) -> torch.Tensor:
    train = open_train_store(ctx)
    ifvp = scored_store(ctx, train)
    values = torch.empty(train.n_rows, dtype=torch.float64)
    with profiled(ctx, "self_influence", "rows") as box:
        for a, b in zip(train.iter_chunks(), ifvp.iter_chunks()):
            values[a.start:a.stop] = (a.features.double() * b.features.double()).sum(dim=1)
            box["count"] += a.stop - a.start
    path = store_layout(ctx).self_influence
    save_artifact({"self_influence": values.float()}, path, precondition_fingerprint(ctx), kind="self-influence")
    top = torch.topk(values, min(5, len(values)))
    ctx.metrics["self_influence/top"] = {int(i): float(v) for v, i in zip(top.values, top.indices)}
    ctx.metrics["self_influence/mean"] = float(values.mean())
    log.info("self_influence: %d train rows -> %s", len(values), path)
    return values
