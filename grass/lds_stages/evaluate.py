"""Stage `lds`: LDS on the reported (non-validation) queries with a bootstrap interval; and the LDS on the
validation queries that chooses the damping (both pipelines)."""

import logging
import math

import torch

from grass.data.subsets import validation_split
from grass.lds.metric import bootstrap_ci, lds
from grass.model_files import subset_masks
from grass.run_context import RunContext

log = logging.getLogger(__name__)


def run_lds(ctx: RunContext, scores: torch.Tensor, truth: torch.Tensor) -> dict:
    cfg = ctx.cfg
    _, eval_idx = validation_split(ctx.task.n_query, cfg.lds.val_fraction, cfg.seed)
    result = lds(scores[:, eval_idx], subset_masks(ctx), truth[:, eval_idx])
    low, high = bootstrap_ci(result.per_query, n_boot=cfg.lds.bootstrap, level=cfg.lds.ci_level, seed=cfg.seed)
    metrics = {"lds/mean": result.mean, "lds/ci_low": low, "lds/ci_high": high,
               "lds/n_queries": result.n_queries, "lds/n_undefined": result.n_undefined,
               # per query (null = undefined), with the query numbers: two runs compare query by query
               # (grass.report.paired), a far tighter comparison than their two intervals
               "lds/per_query": [None if math.isnan(v) else v for v in result.per_query.tolist()],
               "lds/queries": eval_idx.tolist()}
    ctx.metrics.update(metrics)
    log.info("LDS %.4f (%.0f%% CI %.4f to %.4f) over %d queries, %d undefined", result.mean,
             100 * cfg.lds.ci_level, low, high, result.n_queries - result.n_undefined, result.n_undefined)
    return metrics
