"""The damping is chosen by LDS on a seeded validation split of the queries (SPEC 1.1), in both pipelines."""

from collections.abc import Callable

import torch

from grass.data.subsets import validation_split
from grass.lds.metric import lds
from grass.model_files import subset_masks
from grass.run_context import RunContext


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
