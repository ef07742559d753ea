"""Cost curves: how the attribute stage and the staged pipeline grow with the work, with the fitted growth.

Run: `.venv/bin/python bench/bench_cost_curves.py` (GRASS_BENCH_QUICK=1: seconds-long smoke sizes). Writes
cost_curves.json and cost_curves.png (bench/results/, or the quick temp folder).

1. attribute vs n_train and vs k (random features, float32 N(0, 1), one checkpoint, seeded): the tda's attributor
   built from conf/tda/<GRASS_BENCH_TDA, default trak>.yaml's node (its public class, as the attribute stage
   builds it), then what grass/lds_stages/attribute.py does with it: add_checkpoint (preconditioning),
   grass.attribute.damping.select_damping over the config's damping grid on 10 % of the queries (validation),
   scores at the chosen damping for all queries. The validation objective is a stand-in (the mean score; the
   LDS needs ground truth and costs the same on any features), so the chosen damping is arbitrary but the work
   is the stage's. Time: after one untimed warm-up call, the fastest of GRASS_BENCH_CURVE_REPEATS calls per
   point (default 1; wall and process CPU). Peak memory: the rise of this process's
   peak resident set above its size before the call, with the kernel's peak counter reset first
   (/proc/self/clear_refs = 5; Linux only, recorded as null elsewhere).
   Full: n in 1k..100k at k=2048, k in 1k..16k at n=4500 (the default MNIST run's n); m = 100 queries.
2. the staged pipeline vs the number of train blocks: one Hydra multirun (one process, so start-up is paid
   once) of `run.py experiment=tiny_lm pipeline=store stage=all profile=true model=hf_causal_lm` on the random
   Llama of bench/llama_folder.py and the offline corpus (benchlib.lm_corpus: `make corpus`, GRASS_BENCH_CORPUS) with
   dataset.n_train over the grid; each job's profile/<stage>/*_per_s: cache tokens/s, precondition and ifvp
   rows/s, attribute pairs/s (train blocks x queries), self_influence rows/s.
Each curve gets the least-squares slope of log(time) on log(size), printed as its growth: flat (< 0.5),
linear (< 1.5), quadratic (< 2.5) or cubic; a throughput's slope is that of its stage's seconds.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import summary_costs
import torch
from llama_folder import save_llama
from omegaconf import OmegaConf

from grass.attribute.damping import select_damping
from grass.config import GrassConfig
from grass.instantiate import instantiate_node

QUICK = benchlib.QUICK
REPO = Path(__file__).resolve().parents[1]
TDA = os.environ.get("GRASS_BENCH_TDA", "trak")
QUERIES = 50 if QUICK else 100
# quick: small eigendecompositions only (under contention a 1000 x 1000 float64 eigh on 2 threads took 7-28 s)
N_GRID, N_K = ((250, 500, 1000, 2000), 128) if QUICK else ((1000, 3000, 10_000, 30_000, 100_000), 2048)
K_GRID, K_N = ((64, 128, 256, 512), 200) if QUICK else ((1024, 2048, 4096, 8192, 16_384), 4500)
REPEATS = int(benchlib.env_float("GRASS_BENCH_CURVE_REPEATS", 1))  # the fastest of these calls per point
BLOCKS_GRID = (16, 32, 64) if QUICK else (32, 64, 128, 256)
BLOCK, LAYERS, WIDTH, STORE_QUERIES = (32, 2, 64, 8) if QUICK else (64, 2, 128, 16)
CORPUS = benchlib.lm_corpus()
ENV = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TQDM_DISABLE": "1"}
STORE_UNITS = {"cache": "tokens", "precondition": "rows", "ifvp": "rows", "attribute": "pairs",
               "self_influence": "rows"}


def growth(sizes, seconds) -> dict:
    """{"slope": d log t / d log size (least squares), "growth": its name, "segment_slopes": the slope between
    neighbouring points (a solver that switches sides, e.g. the n x n dual once k > n, shows up there)}; a None
    slope under two valid points."""
    pts = [(math.log(x), math.log(t)) for x, t in zip(sizes, seconds) if t and t > 0]
    if len(pts) < 2:
        return {"slope": None, "growth": "not fitted (fewer than 2 points)"}
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    name = "flat" if slope < 0.5 else "linear" if slope < 1.5 else "quadratic" if slope < 2.5 else "cubic"
    local = [(y1 - y0) / (x1 - x0) for (x0, y0), (x1, y1) in zip(pts, pts[1:])]  # where the growth changes
    return {"slope": slope, "growth": name, "segment_slopes": local}


def _status_kb(field: str) -> int | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def attribute_point(n: int, k: int) -> dict:
    """The attribute stage's work on random [n, k] train / [QUERIES, k] query features, timed, with peak memory."""
    g = torch.Generator().manual_seed(0)
    train, query = torch.randn(n, k, generator=g), torch.randn(QUERIES, k, generator=g)
    weight = torch.rand(n, generator=g)
    node = OmegaConf.load(REPO / "conf" / "tda" / f"{TDA}.yaml").attributor
    grid = GrassConfig.__dataclass_fields__["damping_grid"].default_factory()
    val_idx = torch.arange(max(1, QUERIES // 10))
    gc.collect()
    tracked = reset_peak()
    rss_before = _status_kb("VmRSS") if tracked else None
    start, start_cpu = time.perf_counter(), time.process_time()
    attributor = instantiate_node(node, "tda.attributor")
    attributor.add_checkpoint(train, query, weight, num_params=10 * k)
    pre = time.perf_counter()
    chosen, _ = select_damping(attributor, grid, val_idx, lambda s: float(s.double().mean()))
    mid = time.perf_counter()
    scores = attributor.scores(chosen)
    end = time.perf_counter()
    peak = (_status_kb("VmHWM") - rss_before) / 1024 if tracked else None
    out = {"n": n, "k": k, "m": QUERIES, "seconds": end - start, "cpu_s": time.process_time() - start_cpu,
           "precondition_s": pre - start, "damping_grid_s": mid - pre, "scores_s": end - mid,
           "peak_mb": peak, "features_mb": (n + QUERIES) * k * 4 / 2**20, "scores_shape": list(scores.shape)}
    del attributor, scores
    gc.collect()
    print(f"  attribute n={n} k={k}: {out['seconds']:.2f} s, peak +{peak or float('nan'):.0f} MB",
          file=sys.stderr, flush=True)
    return out


def fastest(n: int, k: int) -> dict:
    """The fastest of REPEATS attribute_point calls (fixed work on a shared machine: the minimum is the least
    disturbed), with every call's seconds kept."""
    calls = [attribute_point(n, k) for _ in range(REPEATS)]
    best = min(calls, key=lambda p: p["seconds"])
    return {**best, "all_seconds": [p["seconds"] for p in calls],
            "peak_mb": max((p["peak_mb"] for p in calls if p["peak_mb"] is not None), default=None)}


def attribute_curves() -> dict:
    attribute_point(min(N_GRID), min(K_GRID))  # warm-up, untimed: first BLAS / LAPACK calls, lazy imports
    by_n = [fastest(n, N_K) for n in N_GRID]
    by_k = [fastest(K_N, k) for k in K_GRID]
    return {
        "tda": TDA, "m": QUERIES,
        "vs_n": {"k": N_K, "points": by_n, "time": growth(N_GRID, [p["seconds"] for p in by_n]),
                 "memory": growth(N_GRID, [p["peak_mb"] for p in by_n])},
        "vs_k": {"n": K_N, "points": by_k, "time": growth(K_GRID, [p["seconds"] for p in by_k]),
                 "memory": growth(K_GRID, [p["peak_mb"] for p in by_k])},
    }


def store_curve(scratch: Path) -> dict:
    """pipeline=store stage=all over BLOCKS_GRID train blocks in one multirun; per stage throughput and growth."""
    if not CORPUS.exists():
        return {"not_run": f"no corpus at {CORPUS}: run `make corpus` (or set GRASS_BENCH_CORPUS)"}
    model = save_llama(scratch / "model", LAYERS, WIDTH, max_positions=max(256, BLOCK))
    root = scratch / "runs"
    cmd = [sys.executable, "run.py", "-m", "experiment=tiny_lm", "pipeline=store", "stage=all", "profile=true",
           "model=hf_causal_lm", f"model.name_or_path={model}", f"dataset.path={CORPUS}",
           f"dataset.block_size={BLOCK}", f"dataset.n_query={STORE_QUERIES}", "dataset.n_pretrain=0",
           "store.model=base", f"dataset.n_train={','.join(map(str, BLOCKS_GRID))}", f"paths.root={root}",
           "logger=none"]
    print("  staged: " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **ENV, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        return {"not_run": (proc.stdout + proc.stderr)[-1500:]}
    points = []
    for path in root.rglob("metrics.json"):
        m = json.loads(path.read_text())
        stages = {s: {"per_s": m.get(f"profile/{s}/{u}_per_s"), "seconds": m.get(f"profile/{s}/seconds"),
                      "peak_rss_mb": m.get(f"profile/{s}/peak_rss_mb"), "unit": u}
                  for s, u in STORE_UNITS.items() if f"profile/{s}/seconds" in m}
        points.append({"blocks": m["run/n_train"], "stages": stages})
    points.sort(key=lambda p: p["blocks"])
    fits = {s: growth([p["blocks"] for p in points], [p["stages"].get(s, {}).get("seconds") for p in points])
            for s in STORE_UNITS}
    return {"command": " ".join(["python", *cmd[1:]]).replace(str(scratch), "<tmp>"), "block": BLOCK,
            "queries": STORE_QUERIES, "model": f"random Llama, {LAYERS} layers x {WIDTH} wide", "points": points,
            "growth": fits}


def plot(result: dict, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    att = result["attribute"]
    for ax, key, label in ((axes[0], "vs_n", "n_train"), (axes[1], "vs_k", "k")):
        curve = att[key]
        xs = [p["n" if key == "vs_n" else "k"] for p in curve["points"]]
        ax.loglog(xs, [p["seconds"] for p in curve["points"]], "o-", label=f"time (s), {curve['time']['growth']} "
                  f"(slope {curve['time']['slope']:.2f})")
        mem = [p["peak_mb"] for p in curve["points"]]
        if all(v and v > 0 for v in mem):
            ax.loglog(xs, [v / 1024 for v in mem], "s--", label=f"peak memory (GB), {curve['memory']['growth']} "
                      f"(slope {curve['memory']['slope']:.2f})")
        fixed = f"k={curve['k']}" if key == "vs_n" else f"n={curve['n']}"
        if key == "vs_k" and min(xs) <= curve["n"] <= max(xs):
            ax.axvline(curve["n"], color="grey", ls=":", label="k = n (beyond: the n x n example side)")
        ax.set(xlabel=label, title=f"attribute ({att['tda']}, {fixed}, m={att['m']})")
        ax.legend(fontsize=8)
    store = result["store"]
    ax = axes[2]
    if "points" in store:
        xs = [p["blocks"] for p in store["points"]]
        for s, unit in STORE_UNITS.items():
            ys = [p["stages"].get(s, {}).get("per_s") for p in store["points"]]
            if all(ys):
                ax.loglog(xs, ys, "o-", label=f"{s} {unit}/s ({store['growth'][s]['growth']} time)")
        ax.set(xlabel=f"train blocks of {store['block']} tokens ({store['model']})", title="pipeline=store throughput")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "staged pipeline not run", ha="center")
    fig.suptitle(benchlib.machine_line(result["machine"]) + (" (QUICK sizes)" if QUICK else ""), fontsize=8)
    fig.tight_layout()
    path = out / "cost_curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(result: dict) -> str:
    """The printed report: the same tables bench/summary.py puts in SUMMARY.md (bench/summary_costs.py)."""
    header = f"Cost curves; {benchlib.machine_line(result['machine'])}" + (" (QUICK sizes)" if QUICK else "")
    return "\n".join([header, "", *summary_costs.section_cost_curves(result)])


def main() -> None:
    result = {"machine": benchlib.machine(), "load_before": os.getloadavg()[0]}
    result["attribute"] = attribute_curves()
    with tempfile.TemporaryDirectory(prefix="grass_bench_curves_") as tmp:
        result["store"] = store_curve(Path(tmp))
    result["load_after"] = os.getloadavg()[0]
    png = plot(result, benchlib.results_dir())
    result["figure"] = png.name if png else None
    print(markdown(result))
    benchlib.write_result("cost_curves", result)


if __name__ == "__main__":
    main()
