"""The local damping search (grass.attribute.damping, damping_search=local): the grid on checkpoint 0, then every
checkpoint around its best and outward while a neighbour of the best is unscored. It equals the grid's choice on a
one-peak curve with fewer solves, climbs away from a misleading checkpoint 0, is the grid itself with one checkpoint,
and the per-checkpoint parts it sums are the grid's scores."""

import math

import pytest
import torch

from grass.attribute.attributors import InfluenceAttributor, TRAKAttributor
from grass.attribute.damping import select_damping
from grass.errors import GrassError

GRID = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]


class _Parts:
    """Checkpoint parts [2, m']: row 0 the grid index of lambda, row 1 the count 1, per checkpoint; finish_parts sums
    without averaging, so evaluate reads lambda (row 0 / row 1) and how many checkpoints were summed (row 1):
    checkpoint 0 alone (the proxy table) or all of them (the full table)."""

    damping_kind = "absolute"

    def __init__(self, checkpoints: int):
        self.checkpoints = checkpoints
        self.requests = []  # (dampings, checkpoints) of every scores_parts call

    def scores_parts(self, dampings, query_idx, checkpoints):
        checkpoints = list(checkpoints)
        self.requests.append(([float(lam) for lam in dampings], checkpoints))
        out = {}
        for lam in dampings:
            part = torch.ones(2, len(query_idx), dtype=torch.float64) * len(checkpoints)
            part[0] *= GRID.index(float(lam))
            out[float(lam)] = part
        return out

    def finish_parts(self, total, count=None):
        return total

    def scores_grid(self, dampings, query_idx=None):  # the grid search: all checkpoints at every value
        return self.scores_parts(dampings, query_idx, range(self.checkpoints))


def _search(proxy: list[float], full: list[float], checkpoints: int = 3, search: str = "local"):
    """select_damping over GRID where checkpoint 0 alone scores `proxy` and all checkpoints score `full`."""
    fake = _Parts(checkpoints)

    def evaluate(scores):
        summed = int(scores[1, 0])
        index = int(round(float(scores[0, 0]) / summed))
        assert summed in (1, checkpoints)
        return (full if summed == checkpoints else proxy)[index]

    chosen, curve = select_damping(fake, GRID, [0, 1], evaluate, search=search)
    return chosen, curve, fake


PEAK_AT_6 = [0.09, 0.09, 0.1, 0.14, 0.22, 0.32, 0.36, 0.28, 0.2, 0.18]  # the default run's validation LDS


def test_one_peak_same_choice_fewer_solves():
    chosen, curve, fake = _search(PEAK_AT_6, PEAK_AT_6)
    assert chosen == GRID[6] == _search(PEAK_AT_6, PEAK_AT_6, search="grid")[0]
    assert sorted(curve) == GRID[5:8] and all(curve[lam] == PEAK_AT_6[GRID.index(lam)] for lam in curve)
    assert fake.requests[0] == (GRID, [0])  # the proxy: the whole grid on checkpoint 0
    assert fake.requests[1:] == [(GRID[5:8], [1, 2])]  # then 3 values on the other checkpoints, once


def test_a_bumpy_first_checkpoint_gets_the_whole_grid():
    proxy = [0.1, 0.3, 0.2, 0.1, 0.2, 0.25, 0.4, 0.3, 0.2, 0.1]  # two peaks on checkpoint 0
    full = [0.1, 0.35, 0.2, 0.1, 0.2, 0.25, 0.3, 0.2, 0.1, 0.0]  # the global maximum is at index 1
    chosen, curve, fake = _search(proxy, full)
    assert chosen == GRID[1] == _search(proxy, full, search="grid")[0]
    assert sorted(curve) == GRID and fake.requests[1:] == [(GRID, [1, 2])]


def test_rounding_wiggle_on_a_flat_stretch_is_not_a_peak():
    proxy = [0.0930, 0.0926, 0.0941, 0.1075, 0.1414, 0.2187, 0.3176, 0.3615, 0.2850, 0.2059]  # 1e-7 > 1e-6
    chosen, curve, fake = _search(proxy, proxy)
    assert chosen == GRID[7] and sorted(curve) == GRID[6:9]


def test_climbs_away_from_a_misleading_first_checkpoint():
    proxy = [0.0, 0.1, 0.5, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.4]  # checkpoint 0 alone peaks at index 2
    full = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.2, 0.1]  # all checkpoints peak at index 7
    chosen, curve, _ = _search(proxy, full)
    assert chosen == GRID[7]
    assert sorted(curve) == GRID[1:9]  # walked up from 1-3 to 7 and checked 8


def test_grid_edge_and_ties_to_larger_damping():
    rising = [0.1 * i for i in range(10)]
    chosen, curve, _ = _search(rising, rising)
    assert chosen == GRID[-1] and sorted(curve) == GRID[8:]
    flat = [0.3] * 10
    chosen, curve, _ = _search(flat, flat)
    assert chosen == GRID[-1]  # the proxy's tie goes to the larger damping, then climbs to the edge


def test_nan_values_and_all_nan():
    proxy = [math.nan] * 10
    full = [math.nan] * 5 + [0.2, 0.3, 0.1, math.nan, math.nan]
    chosen, curve, _ = _search(proxy, full)  # NaN on checkpoint 0: the whole grid
    assert chosen == GRID[6] and sorted(curve) == GRID
    with pytest.raises(GrassError, match="NaN"):
        _search([math.nan] * 10, [math.nan] * 10)


def test_one_checkpoint_is_the_grid():
    chosen, curve, fake = _search(PEAK_AT_6, PEAK_AT_6, checkpoints=1)
    assert chosen == GRID[6] and sorted(curve) == GRID
    assert len(fake.requests) == 1


def test_unknown_search_refused():
    with pytest.raises(GrassError, match="damping_search"):
        _search(PEAK_AT_6, PEAK_AT_6, search="golden")


@pytest.mark.parametrize("cls", [TRAKAttributor, InfluenceAttributor])
def test_parts_sum_to_the_grid_scores(cls):
    attributor = cls()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        attributor.add_checkpoint(torch.randn(60, 24, generator=g), torch.randn(10, 24, generator=g),
                                  torch.rand(60, generator=g), 1000)
    idx = torch.tensor([1, 4, 7])
    grid = attributor.scores_grid([1e-3, 1.0], idx)
    first = attributor.scores_parts([1e-3, 1.0], idx, [0])
    rest = attributor.scores_parts([1e-3, 1.0], idx, [1, 2])
    for lam in grid:
        torch.testing.assert_close(attributor.finish_parts(first[lam] + rest[lam]), grid[lam], rtol=1e-5, atol=1e-7)
    with pytest.raises(GrassError, match="checkpoints"):
        attributor.scores_parts([1.0], idx, [3])
