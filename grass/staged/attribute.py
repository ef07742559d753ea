"""Stage `attribute`: iFVP shards streamed against the query features, scores into the scores store.

scores[i, j] = sum_l <Phi_l(i) P_l, q_l(j)>, one train chunk at a time: the peak is the query features plus
one chunk's iFVP rows and its [chunk, n_query] score block, checked against store.memory_budget_gb before
any work. The running top-k per query (both ways) feeds the report; the scores store makes a killed run
resumable and lets later tools read any rows.
"""

import logging

import torch
from tqdm.auto import tqdm

from grass.capture.linear import LinearCapture
from grass.errors import GrassError
from grass.fingerprint import fingerprint
from grass.staged.cache import open_train_store
from grass.staged.ifvp import open_ifvp_store
from grass.staged.layout import precondition_fingerprint, store_layout
from grass.staged.model import attribution_model, layer_compressors
from grass.staged.profile import profiled
from grass.staged.queries import query_features
from grass.staged.report import write_report
from grass.stages.context import RunContext
from grass.store import FeatureStore, chunk_ranges, pending_chunks

log = logging.getLogger(__name__)
FLOAT = 4  # bytes


class TopK:
    """Running k largest and k smallest scores of each query column, with their train rows."""

    def __init__(self, k: int, m: int) -> None:
        self.k = k
        self.high = (torch.full((0, m), float("-inf")), torch.zeros(0, m, dtype=torch.int64))
        self.low = (torch.full((0, m), float("inf")), torch.zeros(0, m, dtype=torch.int64))

    def add(self, scores: torch.Tensor, start: int) -> None:
        rows = torch.arange(start, start + scores.shape[0]).unsqueeze(1).expand_as(scores)
        self.high = self._merge(self.high, scores, rows, largest=True)
        self.low = self._merge(self.low, scores, rows, largest=False)

    def _merge(self, best, scores, rows, largest):
        values, index = torch.cat([best[0], scores]), torch.cat([best[1], rows])
        top = torch.topk(values, min(self.k, values.shape[0]), dim=0, largest=largest, sorted=True)
        return top.values, torch.gather(index, 0, top.indices)


def check_budget(n_query: int, dim: int, chunk_rows: int, budget_gb: float) -> None:
    """Query features [m, D] + one chunk's iFVP rows [c, D] and scores [c, m] (x2 for the float copies)."""
    need = FLOAT * (n_query * dim + 2 * chunk_rows * (dim + n_query))
    if need > budget_gb * 1e9:
        raise GrassError(f"attribute: {n_query} queries x {dim} features with chunks of {chunk_rows} train rows "
                         f"need ~{need / 1e9:.3f} GB, over store.memory_budget_gb={budget_gb}; raise the budget or "
                         f"cache with a smaller store.chunk_size")


def stream_scores(ifvp: FeatureStore, queries: torch.Tensor, out: FeatureStore, top: TopK,
                  budget_gb: float) -> int:
    """Write every pending chunk of `out` (ifvp chunk @ queries^T) and feed every chunk to `top`; rows scored."""
    check_budget(queries.shape[0], ifvp.dim, ifvp.chunk_size, budget_gb)
    grid = [c for c, _, _ in chunk_ranges(out.n_rows, out.chunk_size)]
    pending = {c for c, _, _ in pending_chunks(out, 0, 1)}
    # chunks scored by an earlier run of this config are read back (verified), not recomputed
    to_score = ifvp.iter_chunks(chunk_ids=[c for c in grid if c in pending])
    scored = out.iter_chunks(chunk_ids=[c for c in grid if c not in pending])
    done = 0
    for chunk_id in tqdm(grid, desc="attribute", unit="chunk"):
        if chunk_id in pending:
            chunk = next(to_score)
            scores = chunk.features.float() @ queries.T
            out.write(0, chunk_id, (chunk.start, chunk.stop), scores)
            done += chunk.stop - chunk.start
        else:
            chunk = next(scored)
            scores = chunk.features
        top.add(scores, chunk.start)
    return done


def run_attribute_store(ctx: RunContext) -> None:
    cfg, layout = ctx.cfg, store_layout(ctx)
    train = open_train_store(ctx)  # refuses a config that differs from the one the features were cached with
    ifvp = open_ifvp_store(ctx, train)
    model = attribution_model(ctx)
    capture = LinearCapture(model, ctx.task.target(cfg.tda.target), list(cfg.capture.layers),
                            layer_compressors(ctx, model))
    queries = query_features(ctx, capture)
    del model, capture
    q = torch.cat([queries.features[name] for name in train.layers], dim=1)  # store layer order
    fp = {**precondition_fingerprint(ctx), "queries": fingerprint({"ids": queries.token_ids})}
    out = FeatureStore(layout.scores, fp, {"scores": q.shape[0]}, train.n_rows, chunk_size=train.chunk_size,
                       verify=cfg.store.verify)
    top = TopK(cfg.store.top_k, q.shape[0])
    with profiled(ctx, "attribute", "pairs") as box:
        rows = stream_scores(ifvp, q, out, top, cfg.store.memory_budget_gb)
        box["count"] = rows * q.shape[0]
    paths = write_report(ctx, layout, queries, top)
    ctx.metrics.update({"attribute/n_query": q.shape[0], "attribute/rows_scored": rows,
                        "attribute/report": str(paths[0])})
    log.info("attribute: %d queries x %d train rows -> %s; report %s", q.shape[0], train.n_rows, out.path, paths[0])
