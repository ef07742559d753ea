"""attribute with n_train x n_query scores larger than store.memory_budget_gb completes, and its peak memory
stays under the budget plus the fixed footprint of the same code on a 2-chunk store (interpreter, torch, grass,
first matmul), measured alike in a fresh process."""

import subprocess
import sys

import torch

from grass.store import FeatureStore, chunk_ranges

N, M, D, CHUNK = 60_000, 500, 16, 1024
BUDGET_GB = 0.04  # 40 MB; the score matrix is N x M x 4 = 120 MB

IMPORTS = """
import resource, sys, torch
from grass.store_stages.attribute import TopK, stream_scores
from grass.store import FeatureStore
"""
STREAM = """
ifvp = FeatureStore.open(sys.argv[1], {"test": 2})
q = torch.randn(%d, %d, generator=torch.Generator().manual_seed(0))
out = FeatureStore(sys.argv[2], {"test": 3}, {"scores": q.shape[0]}, ifvp.n_rows, chunk_size=ifvp.chunk_size)
top = TopK(5, q.shape[0])
assert stream_scores(ifvp, q, out, top, budget_gb=%r) == ifvp.n_rows
assert out.verify(checksums=False).ok
""" % (M, D, BUDGET_GB)
REPORT = "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"


def _peak_kib(code: str, *args: str) -> int:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1])


def _ifvp_store(path, n):
    ifvp = FeatureStore(path, {"test": 2}, {"all": D}, n, chunk_size=CHUNK)
    gen = torch.Generator().manual_seed(1)
    for c, a, b in chunk_ranges(n, CHUNK):
        ifvp.write(0, c, (a, b), torch.randn(b - a, D, generator=gen))


def test_scores_larger_than_the_budget_stream_under_it(tmp_path):
    assert N * M * 4 > 2.5 * BUDGET_GB * 1e9
    _ifvp_store(tmp_path / "ifvp", N)
    _ifvp_store(tmp_path / "ifvp_small", 2 * CHUNK)
    baseline = _peak_kib(IMPORTS + STREAM + REPORT, str(tmp_path / "ifvp_small"), str(tmp_path / "scores_small"))
    peak = _peak_kib(IMPORTS + STREAM + REPORT, str(tmp_path / "ifvp"), str(tmp_path / "scores"))
    grown_mb = (peak - baseline) / 1024
    print(
        f"\nattribute streaming: {N} x {M} scores ({N * M * 4 / 1e6:.0f} MB) under a {BUDGET_GB * 1e3:.0f} MB "
        f"budget: peak RSS {peak / 1024:.0f} MB, {grown_mb:.1f} MB above the same run on 2 chunks "
        f"({baseline / 1024:.0f} MB)"
    )
    assert grown_mb < BUDGET_GB * 1e3
