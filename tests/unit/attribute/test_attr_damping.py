"""select_damping: argmax over the grid, ties to the larger damping, NaN skipped, all-NaN an error."""

import math

import pytest
import torch

from grass.attribute.attributors import GradDotAttributor
from grass.attribute.damping import select_damping
from grass.errors import GrassError


class _Fake:
    """Scores [n, len(idx)] filled with the damping itself, so evaluate can look up a table."""

    damping_kind = "relative"

    def __init__(self):
        self.calls = []

    def scores(self, damping, query_idx=None):
        self.calls.append((damping, query_idx.tolist()))
        return torch.full((4, len(query_idx)), float(damping), dtype=torch.float64)

    def scores_grid(self, dampings, query_idx=None):
        return {float(lam): self.scores(lam, query_idx) for lam in dampings}


def _run(table: dict[float, float]):
    fake = _Fake()
    result = select_damping(fake, list(table), [1, 3], lambda s: table[float(s[0, 0])])
    return result, fake


def test_picks_argmax_and_returns_full_curve():
    table = {1e-3: 0.1, 1e-2: 0.5, 1e-1: 0.3}
    (chosen, curve), fake = _run(table)
    assert chosen == 1e-2 and curve == table
    assert fake.calls[0] == (1e-3, [1, 3])  # validation queries only


def test_tie_goes_to_larger_damping():
    (chosen, _), _ = _run({1e-3: 0.5, 1.0: 0.5, 1e-1: 0.2})
    assert chosen == 1.0


def test_nan_skipped_and_all_nan_is_an_error():
    (chosen, curve), _ = _run({1e-3: math.nan, 1e-2: 0.2, 10.0: math.nan})
    assert chosen == 1e-2 and math.isnan(curve[10.0])
    with pytest.raises(GrassError, match="NaN"):
        _run({1e-3: math.nan, 1e-2: math.nan})
    with pytest.raises(GrassError, match="empty"):
        _run({})


def test_no_damping_kind_returns_none():
    assert select_damping(GradDotAttributor(), [1.0, 2.0], [0], lambda s: 1.0) == (None, {})
