"""Damping selection: the grid value with the best LDS on the validation queries (SPEC 1.1).

search="grid" scores every grid value on every checkpoint. search="local" (issue #16) scores the whole grid on
checkpoint 0 alone (the proxy curve). When that curve has one peak (rises to its maximum, falls after it), it scores
every checkpoint at the proxy's best value and its two neighbours, and steps outward while a neighbour of the best is
still unscored: it stops at a value both of whose neighbours score lower on all checkpoints. When the all-checkpoint
validation curve has one peak too, that is the grid's own choice, at about 3 + 1/C of the grid's D solves per
checkpoint instead of D. A proxy curve with several peaks (a dip against the climb of more than BUMP of its range;
few validation queries make it bumpy) gets the whole grid on every checkpoint, as search="grid". With one checkpoint
the proxy is the whole curve and the searches are the same. Attributors without per-checkpoint parts (blockwise,
streamed) always search the grid.
"""

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from grass.errors import GrassError

log = logging.getLogger(__name__)
SEARCHES = ("local", "grid")


def select_damping(attributor, grid: Sequence[float], val_idx, evaluate: Callable[[Tensor], float],
                   search: str = "grid") -> tuple[float | None, dict[float, float]]:
    """(chosen lambda, {lambda: validation score} of the values scored on all checkpoints).

    evaluate(scores_val [n_train, n_val]) -> float, e.g. the LDS on the validation queries. The highest
    score wins; ties go to the larger damping (the better-conditioned solve). NaN scores stay in the map
    but are never chosen; an all-NaN grid is an error. For damping_kind "none" returns (None, {}).
    search: "grid" or "local" (module docstring); GrassError for another value.
    """
    if str(search) not in SEARCHES:
        raise GrassError(f"damping_search={search!r}; choose one of {list(SEARCHES)}")
    if attributor.damping_kind == "none":
        return None, {}
    values = [float(lam) for lam in grid]
    if not values:
        raise GrassError(f"{type(attributor).__name__} needs a damping grid, got an empty one")
    idx = torch.as_tensor(val_idx, dtype=torch.long)
    if str(search) == "local" and hasattr(attributor, "scores_parts") and attributor.checkpoints > 1:
        curve = _local_curve(attributor, sorted(set(values)), idx, evaluate)
    else:
        curve = {}
        for lam, scores in attributor.scores_grid(values, idx).items():  # a streamed source: one pass for the grid
            curve[lam] = float(evaluate(scores))
    for lam, score in curve.items():
        log.debug("damping %g: validation score %.5f", lam, score)
    chosen = _best(curve)
    if chosen is None:
        raise GrassError(f"every damping in the grid {values} gave a NaN validation score "
                         "(constant scores or ground truth on all validation queries?)")
    skipped = [lam for lam, score in curve.items() if math.isnan(score)]
    if skipped:
        log.warning("damping values %s gave NaN validation scores and were skipped", skipped)
    return chosen, curve


def _best(curve: dict[float, float]) -> float | None:
    """The lambda of the highest finite score (ties: the larger lambda), None when every score is NaN."""
    finite = [(score, lam) for lam, score in curve.items() if not math.isnan(score)]
    return max(finite)[1] if finite else None


BUMP = 0.1  # a dip against the climb larger than this share of the curve's range makes a second peak


def _one_peak(scores: list[float]) -> bool:
    """True when the scores (in grid order, no NaN) rise to their maximum and fall after it, where a step against
    that direction smaller than BUMP x (max - min) is rounding-level wiggle (a flat stretch of the curve at the
    smallest dampings wiggles in the fourth digit), not a second peak."""
    if any(math.isnan(x) for x in scores):
        return False
    top = scores.index(max(scores))
    slack = BUMP * (max(scores) - min(scores))
    return (all(a <= b + slack for a, b in zip(scores[:top], scores[1:top + 1]))
            and all(a + slack >= b for a, b in zip(scores[top:], scores[top + 1:])))


def _local_curve(attributor, values: list[float], idx: Tensor, evaluate) -> dict[float, float]:
    """The all-checkpoint validation scores at the values the local search visits (values sorted ascending)."""
    count = attributor.checkpoints
    first = attributor.scores_parts(values, idx, [0])  # checkpoint 0's parts at every value
    proxy = {lam: float(evaluate(attributor.finish_parts(first[lam], 1))) for lam in values}
    rest = range(1, count)
    curve: dict[float, float] = {}
    log.info("damping search (local): checkpoint 0's validation curve %s",
             ", ".join(f"{lam:g}: {proxy[lam]:.4f}" for lam in values))
    if not _one_peak([proxy[lam] for lam in values]):  # a bumpy curve: climbing could stop on a side peak
        parts = attributor.scores_parts(values, idx, rest)
        log.info("damping search (local): checkpoint 0's validation curve has more than one peak; the whole grid "
                 "on all %d checkpoints", count)
        return {lam: float(evaluate(attributor.finish_parts(first[lam] + parts[lam], count))) for lam in values}

    def visit(group: list[float]) -> None:
        group = [lam for lam in group if lam not in curve]
        if group:
            parts = attributor.scores_parts(group, idx, rest)
            for lam in group:
                curve[lam] = float(evaluate(attributor.finish_parts(first[lam] + parts[lam], count)))

    start = _best(proxy)  # one peak, no NaN: never None
    i = values.index(start)
    visit(values[max(0, i - 1):i + 2])
    while True:
        best = _best(curve)
        if best is None:  # every value scored so far is NaN: nothing to climb, score the whole grid
            visit(values)
            break
        i = values.index(best)
        outward = [values[j] for j in (i - 1, i + 1) if 0 <= j < len(values) and values[j] not in curve]
        if not outward:
            break
        visit(outward)
    log.info("damping search (local): the grid of %d on checkpoint 0 (best %g), then all %d checkpoints at %d values",
             len(values), start, count, len(curve))
    return curve
