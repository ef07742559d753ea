"""The report keeps every configuration visible: one table per tda, shared cells listed, every run in the CSV."""

import csv
import json

from grass.report.table import build_report


def _run(root, folder, tda, lds, started, compressor="sjlt", k=128):
    path = root / "tiny" / "digits-mlp" / folder / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "run/dataset": "digits", "run/model": "mlp", "run/tda": tda, "run/compressor": compressor,
        "run/proj_dim": k, "run/seed": 0, "run/started": started, "run/machine": "test",
        "lds/mean": lds, "lds/ci_low": lds - 0.1, "lds/ci_high": lds + 0.1, "time/compress_s": 0.5}))


def test_two_tdas_give_two_tables_and_a_shared_cell_is_listed(tmp_path):
    _run(tmp_path, "sjlt-k128-trak-s0-aaaaaa", "trak", 0.25, "2026-01-01T00:00:00")
    _run(tmp_path, "sjlt-k128-trak-s0-bbbbbb", "trak", 0.30, "2026-01-02T00:00:00")  # e.g. another damping grid
    _run(tmp_path, "sjlt-k128-grad_dot-s0-cccccc", "grad_dot", 0.11, "2026-01-01T00:00:00")
    text = build_report(tmp_path, "tiny")
    trak, grad_dot = text.index("### tda=trak"), text.index("### tda=grad_dot")
    assert "0.300 [0.200, 0.400]" in text[trak:] and "0.110 [0.010, 0.210]" in text[grad_dot:trak]
    assert "sjlt k=128: 2 configurations, shown: digits-mlp/sjlt-k128-trak-s0-bbbbbb; also " \
           "digits-mlp/sjlt-k128-trak-s0-aaaaaa (0.250)" in text
    with open(tmp_path / "tiny" / "report" / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["run"] for r in rows) == [
        "digits-mlp/sjlt-k128-grad_dot-s0-cccccc",
        "digits-mlp/sjlt-k128-trak-s0-aaaaaa",
        "digits-mlp/sjlt-k128-trak-s0-bbbbbb",
    ]


def test_a_run_whose_lds_is_null_is_left_out(tmp_path):
    _run(tmp_path, "sjlt-k128-trak-s0-aaaaaa", "trak", 0.25, "2026-01-01T00:00:00")
    path = tmp_path / "tiny" / "digits-mlp" / "x" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"lds/mean": None, "run/tda": "trak"}))  # strict JSON of an undefined LDS
    assert "0.250" in build_report(tmp_path, "tiny")
