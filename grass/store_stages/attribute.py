"""Stage `attribute`: iFVP shards streamed against the query features, scores into the scores store.

scores[i, j] = sum_l <Phi_l(i) P_l, q_l(j)>, a block of whole train chunks at a time: the block is as many
chunks as store.memory_budget_gb holds next to the query features (iFVP rows and [rows, n_query] scores), and
a budget too small for one chunk is an error before any work. The running top-k per query (both ways) feeds the
report; the scores store makes a killed run resumable and lets later tools read any rows.
"""

import logging

import torch
from tqdm.auto import tqdm

from grass.errors import GrassError
from grass.fingerprint import fingerprint
from grass.run_context import RunContext
from grass.store import FeatureStore, chunk_ranges, pending_chunks
from grass.store_stages.cache import open_train_store
from grass.store_stages.damping import damping_mode
from grass.store_stages.ifvp import scored_store
from grass.store_stages.layout import precondition_fingerprint, store_layout
from grass.store_stages.precondition import load_precondition
from grass.store_stages.profile import profiled
from grass.store_stages.queries import capture_queries
from grass.store_stages.report import write_report

log = logging.getLogger(__name__)
FLOAT = 4  # bytes


class TopK:
    """Running k largest and k smallest scores of each query column, with their train rows."""

    def __init__(self, k: int, m: int) -> None:
        self.k = k
        self.high = (torch.full((0, m), float("-inf")), torch.zeros(0, m, dtype=torch.int64))
        self.low = (torch.full((0, m), float("inf")), torch.zeros(0, m, dtype=torch.int64))

    def add(self, scores: torch.Tensor, start: int) -> None:
        """scores [rows, m] of train rows start, start + 1, ...: merged through the block's own top-k, so the
        temporaries are [2k, m] whatever the block size."""
        self.high = self._merge(self.high, scores, start, largest=True)
        self.low = self._merge(self.low, scores, start, largest=False)

    def _merge(self, best, scores, start, largest):
        block = torch.topk(scores, min(self.k, scores.shape[0]), dim=0, largest=largest, sorted=True)
        values, index = torch.cat([best[0], block.values]), torch.cat([best[1], block.indices + start])
        top = torch.topk(values, min(self.k, values.shape[0]), dim=0, largest=largest, sorted=True)
        return top.values, torch.gather(index, 0, top.indices)


def block_rows(n_query: int, dim: int, chunk_rows: int, budget_gb: float) -> int:
    """Train rows scored per block: the query features [m, D] plus, per block, its iFVP rows [r, D] and scores
    [r, m] (x2 for the copies made on the way) fit store.memory_budget_gb; at least one chunk, else an error."""
    room = budget_gb * 1e9 / FLOAT - n_query * dim
    rows = int(room // (2 * (dim + n_query))) if room > 0 else 0
    if rows < chunk_rows:
        need = FLOAT * (n_query * dim + 2 * chunk_rows * (dim + n_query))
        raise GrassError(
            f"attribute: {n_query} queries x {dim} features with chunks of {chunk_rows} train rows "
            f"need ~{need / 1e9:.3f} GB, over store.memory_budget_gb={budget_gb}; raise the budget or "
            f"cache with a smaller store.chunk_size"
        )
    return rows


def stream_scores(ifvp: FeatureStore, queries: torch.Tensor, out: FeatureStore, top: TopK, budget_gb: float) -> int:
    """Write every pending chunk of `out` (ifvp rows @ queries^T, as many whole chunks per block as the budget
    allows) and feed every chunk to `top`; returns the rows scored now."""
    per_block = block_rows(queries.shape[0], ifvp.dim, ifvp.chunk_size, budget_gb) // ifvp.chunk_size
    grid = [c for c, _, _ in chunk_ranges(out.n_rows, out.chunk_size)]
    pending = {c for c, _, _ in pending_chunks(out, 0, 1)}
    todo = [c for c in grid if c in pending]
    to_score = ifvp.iter_chunks(chunk_ids=todo)
    # one block's buffers, reused: fresh large allocations per block grow the heap of a long run (glibc keeps
    # freed blocks once its mmap threshold has risen), which the budget does not see
    rows = min(per_block * ifvp.chunk_size, ifvp.n_rows)
    feats = torch.empty(rows, ifvp.dim)
    scores_buf = torch.empty(rows, queries.shape[0])
    done = 0
    for first in tqdm(range(0, len(todo), per_block), desc="attribute", unit="block"):
        chunks = [next(to_score) for _ in todo[first : first + per_block]]
        n = sum(c.stop - c.start for c in chunks)
        torch.cat([chunk.features.float() for chunk in chunks], out=feats[:n])
        scores = torch.matmul(feats[:n], queries.T, out=scores_buf[:n])
        for chunk, part in zip(chunks, scores.split([c.stop - c.start for c in chunks])):
            out.write(0, chunk.chunk_id, (chunk.start, chunk.stop), part)
            top.add(part, chunk.start)
            done += chunk.stop - chunk.start
    # chunks scored by an earlier run of this config are read back (verified), not recomputed
    for chunk in out.iter_chunks(chunk_ids=[c for c in grid if c not in pending]):
        top.add(chunk.features, chunk.start)
    return done


def run_attribute_store(ctx: RunContext) -> None:
    cfg, layout = ctx.cfg, store_layout(ctx)
    train = open_train_store(ctx)  # refuses a config that differs from the one the features were cached with
    ifvp = scored_store(ctx, train)
    damping = None if damping_mode(cfg) == "none" else load_precondition(ctx)["damping"]
    queries = capture_queries(ctx)
    q = torch.cat([queries.features[name] for name in train.layers], dim=1)  # store layer order
    fp = {**precondition_fingerprint(ctx), "queries": fingerprint({"ids": queries.token_ids})}
    out = FeatureStore(
        layout.scores, fp, {"scores": q.shape[0]}, train.n_rows, chunk_size=train.chunk_size, verify=cfg.store.verify
    )
    top = TopK(cfg.store.top_k, q.shape[0])
    with profiled(ctx, "attribute", "pairs") as box:
        rows = stream_scores(ifvp, q, out, top, cfg.store.memory_budget_gb)
        box["count"] = rows * q.shape[0]
    paths = write_report(ctx, layout, queries, top, damping)
    ctx.metrics.update(
        {
            "attribute/n_query": q.shape[0],
            "attribute/rows_scored": rows,
            "attribute/damping": damping,
            "attribute/report": str(paths[0]),
        }
    )
    log.info("attribute: %d queries x %d train rows -> %s; report %s", q.shape[0], train.n_rows, out.path, paths[0])
