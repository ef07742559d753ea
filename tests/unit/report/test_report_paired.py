"""Paired comparisons in the report: SJLT minus each method over the same queries, with a bootstrap interval;
runs without per-query LDS or scored on other queries are not paired."""

import csv
import json

import pytest

from grass.report.paired import paired_difference
from grass.report.table import build_report


def _row(per_query, queries=(0, 1, 2, 3)):
    return {"_per_query": list(per_query), "_queries": list(queries)}


def test_a_constant_shift_is_the_difference_with_a_zero_width_interval():
    base = [0.1, 0.3, -0.2, 0.5]
    mean, low, high, n = paired_difference(_row([v + 0.05 for v in base]), _row(base))
    assert (n, mean, low, high) == (4, pytest.approx(0.05), pytest.approx(0.05), pytest.approx(0.05))


def test_undefined_queries_drop_out_and_mismatched_runs_are_not_paired():
    mean, _, _, n = paired_difference(_row([0.4, None, 0.2, 0.1]), _row([0.1, 0.3, None, 0.0]))
    assert n == 2 and mean == pytest.approx((0.3 + 0.1) / 2)
    assert paired_difference(_row([0.1] * 4), _row([0.1] * 4, queries=(0, 1, 2, 4))) is None  # other queries
    assert paired_difference({"_per_query": None, "_queries": None}, _row([0.1] * 4)) is None  # an older run


def _run(root, compressor, k, per_query, folder_hash="abcdef"):
    path = root / "exp" / "data-model" / f"{compressor}-k{k}-trak-s0-{folder_hash}" / "metrics.json"
    path.parent.mkdir(parents=True)
    lds = sum(per_query) / len(per_query)
    path.write_text(json.dumps({
        "run/tda": "trak", "run/compressor": compressor, "run/proj_dim": k, "run/seed": 0,
        "run/started": "2026-01-01T00:00:00", "run/machine": "test", "lds/mean": lds, "lds/ci_low": lds - 0.1,
        "lds/ci_high": lds + 0.1, "time/compress_s": 1.0, "lds/per_query": per_query, "lds/queries": [0, 1, 2, 3]}))


def test_the_report_prints_sjlt_minus_each_method_per_k_and_keeps_the_lists_out_of_the_csv(tmp_path):
    for k in (2048, 4096):
        _run(tmp_path, "sjlt", k, [0.3, 0.2, 0.4, 0.1])
        _run(tmp_path, "random_mask", k, [0.1, 0.0, 0.2, -0.1])
    text = build_report(tmp_path, "exp")
    (line,) = [row for row in text.splitlines() if row.startswith("| sjlt - random_mask |")]
    assert line == "| sjlt - random_mask | +0.200 [+0.200, +0.200] | +0.200 [+0.200, +0.200] |"
    with open(tmp_path / "exp" / "report" / "table.csv") as f:
        assert not any(key.startswith("_") for key in next(csv.DictReader(f)))


def test_a_cell_with_several_configurations_is_not_paired(tmp_path):
    for k in (2048, 4096):
        _run(tmp_path, "sjlt", k, [0.3, 0.2, 0.4, 0.1])
        _run(tmp_path, "random_mask", k, [0.1, 0.0, 0.2, -0.1])
    _run(tmp_path, "sjlt", 4096, [0.0, 0.0, 0.1, 0.1], folder_hash="fedcba")  # e.g. another tda.train_output
    text = build_report(tmp_path, "exp")
    (line,) = [row for row in text.splitlines() if row.startswith("| sjlt - random_mask |")]
    assert line == "| sjlt - random_mask | +0.200 [+0.200, +0.200] | - |"
    assert "cells with several configurations (listed above) are not paired" in text
