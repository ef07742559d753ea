"""Damping selection: the grid value with the best LDS on the validation queries (SPEC 1.1)."""

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from grass.errors import GrassError

log = logging.getLogger(__name__)


def select_damping(attributor, grid: Sequence[float], val_idx,
                   evaluate: Callable[[Tensor], float]) -> tuple[float | None, dict[float, float]]:
    """(chosen lambda, {lambda: validation score}) over the grid.

    evaluate(scores_val [n_train, n_val]) -> float, e.g. the LDS on the validation queries. The highest
    score wins; ties go to the larger damping (the better-conditioned solve). NaN scores stay in the map
    but are never chosen; an all-NaN grid is an error. For damping_kind "none" returns (None, {}).
    """
    if attributor.damping_kind == "none":
        return None, {}
    values = [float(lam) for lam in grid]
    if not values:
        raise GrassError(f"{type(attributor).__name__} needs a damping grid, got an empty one")
    idx = torch.as_tensor(val_idx, dtype=torch.long)
    curve: dict[float, float] = {}
    for lam, scores in attributor.scores_grid(values, idx).items():  # a streamed source: one pass for the grid
        curve[lam] = float(evaluate(scores))
        log.debug("damping %g: validation score %.5f", lam, curve[lam])
    finite = [(score, lam) for lam, score in curve.items() if not math.isnan(score)]
    if not finite:
        raise GrassError(f"every damping in the grid {values} gave a NaN validation score "
                         "(constant scores or ground truth on all validation queries?)")
    skipped = [lam for lam, score in curve.items() if math.isnan(score)]
    if skipped:
        log.warning("damping values %s gave NaN validation scores and were skipped", skipped)
    _, chosen = max(finite)  # tuple order: best score first, then the larger lambda on a tie
    return chosen, curve
