"""The attribute stage's preconditioning at the default size: float64 eigh (the reference) vs the cost-chosen solver.

Run: `.venv/bin/python bench/bench_attribute.py` (GRASS_BENCH_QUICK=1: seconds-long smoke sizes).
Writes attribute.json. What is timed is what `stage=attribute` does after the features exist (grass.lds_stages.
attribute: add every checkpoint, select_damping over the grid on the validation queries, scores of every query at
the chosen damping), with TRAKAttributor(solver=...) for each solver in SOLVERS, one after the other in this
process on the same features. Reported per solver: wall and CPU seconds of each step, the attributor's peak memory
(grass.attribute.memory: tensor byte accounting, per checkpoint and overall), the solver it used, and the score
error against the reference at every damping of the grid (validation queries) and at the chosen damping (all
queries): max over the grid of ||S - S_eigh||_F / ||S_eigh||_F and of max|S - S_eigh| / max|S_eigh|.

Features: the default experiment's shapes (n_train 4500, n_query 500, k = 4096, 10 checkpoints, validation 10 %,
p = 109386 MLP parameters), random but with the eigenvalue spectrum of the real default run's features (the
quantiles of eig(Phi^T Phi) / p measured on its checkpoint 0, SPECTRUM below), so the solves are as ill-conditioned
as the real ones at the small dampings; each checkpoint is drawn with its own seed. Environment:
  GRASS_BENCH_CHECKPOINTS=C       checkpoints (default 10; per-checkpoint costs add up, so fewer give the same ratio)
  GRASS_BENCH_ATTRIBUTE_FEATURES  a torch file holding a list of {"train", "query", "weight", "p"} per checkpoint
                                  (real features) instead of the random ones
"""

from __future__ import annotations

import os
import time

import benchlib
import numpy as np
import torch

from grass.attribute.attributors import TRAKAttributor
from grass.attribute.damping import select_damping
from grass.attribute.memory import MB
from grass.attribute.solver import DampedSolver
from grass.config import GrassConfig
from grass.data.subsets import validation_split

QUICK = benchlib.QUICK
N_TRAIN, N_QUERY, K = (600, 100, 512) if QUICK else (4500, 500, 4096)
CHECKPOINTS = int(benchlib.env_float("GRASS_BENCH_CHECKPOINTS", 2 if QUICK else 10))
NUM_PARAMS = 109386
VAL_FRACTION = 0.1
GRID = list(GrassConfig().damping_grid)
# today: main before issue #16 (eigh fitted when a checkpoint is added, its eigenbasis kept); eigh: the float64
# reference as it is now (fitted on first use, eigenbasis dropped); auto: the cost-chosen solver
SOLVERS = tuple(os.environ.get("GRASS_BENCH_SOLVERS", "today,eigh,auto").split(","))
REFERENCE = "eigh"
# quantile -> eig(Phi^T Phi) / p of the default run's checkpoint 0 (mnist_mlp, sjlt k=4096, n_train 4500)
SPECTRUM = ((0.0, 5.0e-6), (0.01, 1.2e-5), (0.1, 1.2e-4), (0.5, 3.2e-3), (0.9, 4.5e-2), (0.99, 0.5), (1.0, 9.2))


def random_checkpoint(c: int) -> dict:
    """Train [n, k] / query [m, k] float32 features whose Gram has about SPECTRUM's eigenvalues (times p)."""
    g = torch.Generator().manual_seed(1000 + c)
    quantiles, values = zip(*SPECTRUM)
    eig = np.exp(np.interp(np.linspace(0, 1, K), quantiles, np.log(values))) * NUM_PARAMS  # [k]
    scale = torch.as_tensor(np.sqrt(eig / N_TRAIN), dtype=torch.float32)  # column scales: Phi^T Phi ~ n diag(s^2)
    train = torch.randn(N_TRAIN, K, generator=g) * scale
    query = torch.randn(N_QUERY, K, generator=g) * scale
    weight = torch.rand(N_TRAIN, generator=g)
    return {"train": train, "query": query, "weight": weight, "p": NUM_PARAMS}


def features() -> list[dict]:
    path = os.environ.get("GRASS_BENCH_ATTRIBUTE_FEATURES")
    if path:
        return torch.load(path)[:CHECKPOINTS]
    return [random_checkpoint(c) for c in range(CHECKPOINTS)]


def objective(ckpts: list[dict], val_idx: torch.Tensor):
    """A stand-in for the validation LDS, the same for every solver: the mean per-query Pearson correlation of the
    scores with a fixed target (the grad-dot scores of the validation queries, plus seeded noise)."""
    target = sum(c["train"] @ c["query"][val_idx].T for c in ckpts).double()
    target += 0.5 * target.std() * torch.randn(target.shape, generator=torch.Generator().manual_seed(7),
                                               dtype=torch.float64)
    t = target - target.mean(0)

    def evaluate(scores: torch.Tensor) -> float:
        s = scores.double() - scores.double().mean(0)
        return float(((s * t).sum(0) / (s.norm(dim=0) * t.norm(dim=0))).mean())

    return evaluate


class TodayTRAK(TRAKAttributor):
    """The path before issue #16, for the comparison: each checkpoint's eigendecomposition made when it is added,
    and its float64 eigenbasis V [k, k] kept with L = Phi V and R = Q V (nothing read V again)."""

    def __init__(self):
        super().__init__(solver="eigh")

    def _store(self, train, query):
        super()._store(train, query)
        c = len(self._fits) - 1
        solver = DampedSolver(train)
        projected = solver.project_queries(query)
        self._fits[c], self._features[c] = (solver, projected), None  # no solver.release(): V stays
        self._note(c, *solver.held(), projected, extra=3 * min(solver.n, solver.dim) ** 2 * 8)
        self.checkpoint_peaks[c] = max(self.checkpoint_peaks[c], self.meter.set_held(self._held()))


def run_stage(ckpts: list[dict], solver: str, val_idx: torch.Tensor, evaluate) -> tuple[dict, dict, torch.Tensor]:
    """What stage=attribute does after the features exist (add, select_damping, scores), timed step by step."""
    attributor = TodayTRAK() if solver == "today" else TRAKAttributor(solver=solver)
    seen = []  # the grid's validation scores, in grid order, as select_damping evaluates them

    def record(scores):
        seen.append(scores)
        return evaluate(scores)

    out, times = {"solver": solver}, {}
    for name in ("add", "grid", "scores"):
        start, cpu = time.perf_counter(), time.process_time()
        if name == "add":
            for c in ckpts:
                attributor.add_checkpoint(c["train"], c["query"], c["weight"], c["p"])
        elif name == "grid":
            chosen, curve = select_damping(attributor, GRID, val_idx, record)
            out["grid_solver"] = attributor.last_solver
        else:
            final = attributor.scores(chosen)
            out["scores_solver"] = attributor.last_solver
        times[name] = {"s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}
    out.update(times=times, total_s=sum(t["s"] for t in times.values()),
               total_cpu_s=sum(t["cpu_s"] for t in times.values()), chosen=chosen, curve=curve,
               peak_mb=attributor.meter.peak / MB, held_mb=attributor.meter.held / MB,
               checkpoint_peak_mb=[round(b / MB, 1) for b in attributor.checkpoint_peaks])
    reports = attributor.solve_reports
    out["mixed_steps_max"] = max((r.steps for r in reports if r.precision == "mixed"), default=None)
    out["fell_back"] = sum(r.fell_back for r in reports)
    return out, dict(zip(GRID, seen)), final


def errors(got: torch.Tensor, want: torch.Tensor) -> dict:
    got, want = got.double(), want.double()
    return {"rel_frobenius": float((got - want).norm() / want.norm()),
            "rel_max": float((got - want).abs().max() / want.abs().max())}


def main() -> None:
    info = benchlib.machine()
    print(benchlib.machine_line(info))
    ckpts = features()
    (n, k), m = ckpts[0]["train"].shape, ckpts[0]["query"].shape[0]
    val_idx, _ = validation_split(m, VAL_FRACTION, 0)
    evaluate = objective(ckpts, val_idx)
    results, grids, finals = {}, {}, {}
    for solver in SOLVERS:
        stage, grids[solver], finals[solver] = run_stage(ckpts, solver, val_idx, evaluate)
        results[solver] = stage
        print(f"{solver:>5}: {stage['total_s']:7.1f} s wall ({stage['total_cpu_s']:.1f} s CPU) "
              f"[add {stage['times']['add']['s']:.1f}, grid {stage['times']['grid']['s']:.1f} "
              f"({stage['grid_solver']}), scores {stage['times']['scores']['s']:.1f} ({stage['scores_solver']})], "
              f"peak {stage['peak_mb']:.0f} MB, chosen damping {stage['chosen']:g}")
    ref = REFERENCE if REFERENCE in SOLVERS else SOLVERS[0]
    for solver in [s for s in SOLVERS if s != ref]:
        per = {str(lam): errors(grids[solver][lam], grids[ref][lam]) for lam in GRID}
        res = results[solver]
        res.update(grid_errors=per, final_errors=errors(finals[solver], finals[ref]),
                   grid_rel_frobenius_max=max(e["rel_frobenius"] for e in per.values()),
                   grid_rel_max_max=max(e["rel_max"] for e in per.values()),
                   speedup_wall=results[ref]["total_s"] / res["total_s"],
                   speedup_cpu=results[ref]["total_cpu_s"] / res["total_cpu_s"],
                   memory_lower=1 - res["peak_mb"] / results[ref]["peak_mb"])
        print(f"{solver} vs {ref}: {res['speedup_wall']:.2f}x faster wall, {res['speedup_cpu']:.2f}x CPU; peak memory "
              f"{100 * res['memory_lower']:.0f} % lower; score error over the grid (validation queries): rel "
              f"Frobenius <= {res['grid_rel_frobenius_max']:.1e}, rel max <= {res['grid_rel_max_max']:.1e}; at the "
              f"chosen damping (all queries): {res['final_errors']['rel_frobenius']:.1e} / "
              f"{res['final_errors']['rel_max']:.1e}")
    benchlib.write_result("attribute", {
        "machine": info, "n_train": n, "n_query": m, "k": k, "reference": ref, "checkpoints": len(ckpts),
        "val_queries": int(val_idx.numel()), "grid": GRID,
        "features": os.environ.get("GRASS_BENCH_ATTRIBUTE_FEATURES") or "random",
        "results": results, "load_average_1min_end": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
