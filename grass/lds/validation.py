"""The damping is chosen by LDS on a seeded validation split of the queries (SPEC 1.1), in both pipelines."""

import logging
from collections.abc import Callable

import torch

from grass.data.subsets import validation_split
from grass.lds.metric import lds
from grass.model_files import subset_masks
from grass.run_context import RunContext

log = logging.getLogger(__name__)

# validation LDS the grid's end must beat its neighbour by before the grid is called too narrow: a flat end (the
# under-damped side, where lambda no longer matters) ties to the third decimal and is no sign of a better lambda
EDGE_MARGIN = 0.005


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
    edge = rising_edge(curve, chosen, ctx.cfg.damping_grid)
    if edge:
        log.warning("damping %g is the %s end of damping_grid and its validation LDS %.4f still beats the next value's "
                    "%.4f: the best damping may lie outside the grid; extend damping_grid", chosen, edge,
                    curve[chosen], curve[_neighbour(curve, chosen)])


def rising_edge(curve: dict[float, float], chosen: float | None, grid) -> str | None:
    """'lowest' / 'highest' when the chosen damping is that end of `grid` (damping_grid, >= 3 values) and its
    validation LDS beats the next scored value's by more than EDGE_MARGIN (the curve still rises out of the grid),
    else None. `curve` holds the scored values only: damping_search=local scores the best's neighbours, so an end
    it chose has its inner neighbour scored."""
    grid = sorted(float(v) for v in grid)
    if chosen is None or len(grid) < 3 or len(curve) < 2 or chosen not in curve:
        return None
    if chosen not in (grid[0], grid[-1]):
        return None
    if curve[chosen] - curve[_neighbour(curve, chosen)] <= EDGE_MARGIN:
        return None
    return "lowest" if chosen == grid[0] else "highest"


def _neighbour(curve: dict[float, float], chosen: float) -> float:
    """The scored value next to an end `chosen` of the curve."""
    lams = sorted(curve)
    return lams[1] if chosen == lams[0] else lams[-2]
