"""Stage `lds`: LDS on the reported (non-validation) queries with a bootstrap interval; and the LDS on the
validation queries that chooses the damping (both pipelines)."""

import logging
from collections.abc import Callable

import torch

from grass.data.subsets import validation_split
from grass.lds.metric import bootstrap_ci, lds
from grass.stages.context import RunContext
from grass.stages.finetune import subset_masks

log = logging.getLogger(__name__)


def validation_objective(ctx: RunContext, truth: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], float]]:
    """(val_idx [n_val], evaluate): the seeded validation queries (lds.val_fraction) and evaluate(scores [n_train,
    n_val]) -> their mean LDS against truth [M, n_query] (SPEC 1.1: the damping is chosen on this split)."""
    cfg = ctx.cfg
    val_idx, _ = validation_split(ctx.task.n_query, cfg.lds.val_fraction, cfg.seed)
    masks = subset_masks(ctx)
    return val_idx, lambda scores: lds(scores, masks, truth[:, val_idx]).mean


def record_damping(ctx: RunContext, chosen: float | None, curve: dict[float, float]) -> None:
    """damping/chosen and damping/val_lds {lambda: validation LDS} into metrics, the curve to the tracker."""
    for lam, value in curve.items():
        ctx.tracker.log({"damping/lambda": lam, "damping/val_lds": value})
    ctx.metrics["damping/chosen"] = chosen
    ctx.metrics["damping/val_lds"] = {str(k): v for k, v in curve.items()}


def run_lds(ctx: RunContext, scores: torch.Tensor, truth: torch.Tensor) -> dict:
    cfg = ctx.cfg
    _, eval_idx = validation_split(ctx.task.n_query, cfg.lds.val_fraction, cfg.seed)
    result = lds(scores[:, eval_idx], subset_masks(ctx), truth[:, eval_idx])
    low, high = bootstrap_ci(result.per_query, n_boot=cfg.lds.bootstrap, level=cfg.lds.ci_level, seed=cfg.seed)
    metrics = {"lds/mean": result.mean, "lds/ci_low": low, "lds/ci_high": high,
               "lds/n_queries": result.n_queries, "lds/n_undefined": result.n_undefined}
    ctx.metrics.update(metrics)
    log.info("LDS %.4f (%.0f%% CI %.4f to %.4f) over %d queries, %d undefined", result.mean,
             100 * cfg.lds.ci_level, low, high, result.n_queries - result.n_undefined, result.n_undefined)
    return metrics
