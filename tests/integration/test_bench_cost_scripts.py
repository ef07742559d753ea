"""bench/bench_end_to_end.py and bench/bench_cost_curves.py in quick mode, and bench/summary.py reading what they
and bench/bench_bergson.py write. Nothing here asserts on a time: only that the breakdown adds up, every curve
has its fitted growth, and the summary tabulates each JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(script: str, results: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GRASS_BENCH_QUICK": "1", "GRASS_BENCH_RESULTS": str(results), **env}
    return subprocess.run([sys.executable, f"bench/{script}"], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=600, check=True)


def test_end_to_end_breakdown_adds_up_to_the_wall_time(tmp_path):
    _run("bench_end_to_end.py", tmp_path)
    data = json.loads((tmp_path / "end_to_end.json").read_text())
    assert data["command"] == "python run.py experiment=tiny" and data["lds_line"].startswith("LDS ")
    rows = data["breakdown"]
    assert abs(sum(r["s"] for r in rows) - data["wall_s"]) < 1e-6 * data["wall_s"]
    assert abs(data["timed_s"] + data["untimed_s"] - data["wall_s"]) < 1e-6 * data["wall_s"]
    parts = {r["part"]: r["kind"] for r in rows}
    for stage, kind in (("finetune", "timed"), ("groundtruth", "untimed"), ("lds", "untimed")):
        assert parts[f"stage {stage}"] == kind
    assert parts["stage attribute: grad"] == "timed" and parts["start-up and exit (interpreter, imports, Hydra)"]
    assert data["metrics"]["time/run_s"] > 0 and data["peak_rss_mb"] > 0
    _run("summary.py", tmp_path)
    assert "| stage groundtruth |" in (tmp_path / "SUMMARY.md").read_text()


def test_cost_curves_fit_a_growth_and_say_when_the_staged_run_cannot_start(tmp_path):
    _run("bench_cost_curves.py", tmp_path, GRASS_BENCH_CORPUS=str(tmp_path / "no-corpus"),
         GRASS_BENCH_CURVE_REPEATS="1")
    data = json.loads((tmp_path / "cost_curves.json").read_text())
    for key in ("vs_n", "vs_k"):
        curve = data["attribute"][key]
        assert len(curve["points"]) == 4 and curve["time"]["growth"] in ("flat", "linear", "quadratic", "cubic")
        assert all(p["scores_shape"] == [p["n"], data["attribute"]["m"]] for p in curve["points"])
    assert "make corpus" in data["store"]["not_run"]
    assert (tmp_path / "cost_curves.png").stat().st_size > 0
    _run("summary.py", tmp_path)
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "Attribute stage (trak" in summary and "pipeline=store: not run" in summary


def test_summary_tabulates_the_bergson_comparison(tmp_path):
    run = {"seconds": 2.0, "tokens": 512, "tokens_per_s": 256.0, "round_tokens_per_s": [256.0], "modules": 14}
    (tmp_path / "bergson.json").write_text(json.dumps({
        "benchmark": "bergson", "quick": True, "machine": {}, "versions": {"bergson": "2.5.1"},
        "config": {"model": "random Llama", "blocks": 16, "block": 32, "batch_blocks": 4, "side": 16,
                   "per_layer_features": 256, "threads": 2, "rounds": 1},
        "results": {"grass": run, "bergson": {**run, "tokens_per_s": 128.0, "round_tokens_per_s": [128.0]},
                    "dattri_factgrass": {"not_run": "quick mode"}},
        "ratios": {"grass/bergson": 2.0}}))
    _run("summary.py", tmp_path)
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "| bergson | 128 | 2.00x | 14 |" in summary and "| dattri_factgrass | not run: quick mode |" in summary
