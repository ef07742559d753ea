"""bench/bench_gpu.py as `make bench` runs it: nothing measured without CUDA, and the measuring code
itself run end to end on the CPU (GRASS_BENCH_DEVICE=cpu), then tabulated by bench/summary.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _run(script: str, results: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {key: value for key, value in os.environ.items() if key != "GRASS_BENCH_DEVICE"}
    full_env.update(GRASS_BENCH_QUICK="1", GRASS_BENCH_RESULTS=str(results), GRASS_BENCH_MEASURE_S="0.2", **env)
    return subprocess.run([sys.executable, f"bench/{script}"], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=600, check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would measure it")
def test_without_cuda_nothing_is_measured_and_the_summary_says_so(tmp_path):
    _run("bench_gpu.py", tmp_path)
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert data["device"] is None and "no CUDA device" in data["not_run"]
    assert "sjlt" not in data and "factorized" not in data
    _run("summary.py", tmp_path)
    assert "Not run: no CUDA device" in (tmp_path / "SUMMARY.md").read_text()


def test_forced_cpu_device_runs_every_measurement(tmp_path):
    _run("bench_gpu.py", tmp_path, GRASS_BENCH_DEVICE="cpu")
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert data["device"]["type"] == "cpu" and "not a GPU" in data["device"]["name"]
    assert len(data["sjlt"]) == 2  # quick sizes: one (d, k), dense and 90 % zeros
    for row in data["sjlt"]:
        assert row["kernel_path"] in ("cpp", "torch")
        assert row["max_abs_diff"] <= 1e-5 * max(1.0, row["max_abs_ref"])
        assert row["kernel"]["ms"] > 0 and row["copy_gb_s"] > 0 and 0 < row["kernel_copy_fraction"]
    fact = data["factorized"]
    assert {r["layer"] for r in fact["rows"]} == set(data["config"]["factorized_shapes"])
    assert all(r["logra"]["ms"] > 0 and r["factgrass"]["ms"] > 0 for r in fact["rows"])
    assert set(fact["totals"]) == {"256", "1024", "4096"}
    _run("summary.py", tmp_path)
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "Device: CPU (GRASS_BENCH_DEVICE=cpu, not a GPU)" in summary
    assert summary.count(f"| {data['sjlt'][0]['kernel_path']} |") == 2
