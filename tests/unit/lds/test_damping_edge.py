"""The damping grid's end is flagged only when the validation curve still rises out of the grid."""

import logging
from types import SimpleNamespace

import pytest

from grass.lds.validation import record_damping, rising_edge

GRID = [1e-6, 1e-3, 1.0]


@pytest.mark.parametrize(("curve", "chosen", "edge"), [
    ({1e-6: 0.30, 1e-3: 0.20, 1.0: 0.10}, 1e-6, "lowest"),
    ({1e-6: 0.10, 1e-3: 0.20, 1.0: 0.30}, 1.0, "highest"),
    ({1e-6: 0.30, 1e-3: 0.20}, 1e-6, "lowest"),  # damping_search=local: only the end and its neighbour scored
    ({1e-6: 0.222, 1e-3: 0.221, 1.0: 0.15}, 1e-6, None),  # flat under-damped end: lambda no longer matters
    ({1e-6: 0.10, 1e-3: 0.30, 1.0: 0.20}, 1e-3, None),  # interior optimum
    ({1e-3: 0.30, 1.0: 0.10}, 1e-3, None),  # the curve's end, not the grid's
    ({1e-6: 0.30, 1e-3: 0.20, 1.0: 0.10}, None, None),  # no damping (method without one)
])
def test_rising_edge(curve, chosen, edge):
    assert rising_edge(curve, chosen, GRID) == edge


def test_a_grid_of_two_is_no_curve():
    assert rising_edge({1e-6: 0.3, 1.0: 0.1}, 1e-6, [1e-6, 1.0]) is None


def test_record_damping_warns_at_a_rising_edge_only(caplog):
    class Tracker:
        def log(self, values):
            pass

    ctx = SimpleNamespace(tracker=Tracker(), metrics={}, cfg=SimpleNamespace(damping_grid=GRID))
    with caplog.at_level(logging.WARNING, logger="grass.lds.validation"):
        record_damping(ctx, 1e-3, {1e-6: 0.1, 1e-3: 0.3, 1.0: 0.2})
        assert not caplog.records
        record_damping(ctx, 1.0, {1e-3: 0.2, 1.0: 0.3})
    assert ctx.metrics["damping/chosen"] == 1.0
    (rec,) = caplog.records
    assert "highest end of damping_grid" in rec.getMessage() and "extend damping_grid" in rec.getMessage()
