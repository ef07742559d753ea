"""Which damped solver answers a request, by its predicted cost (issue #16: "chosen by measured cost, not habit").

A request is: C checkpoints of train features Phi [n, k] and queries Q [m, k], D dampings, scored on m' of the
queries. Two solvers give the same scores (grass.attribute.solver: one eigendecomposition, then any damping is a
rescale; grass.attribute.cholesky: one factorization per damping). Per checkpoint, with r = min(n, k):

    eigh      M (2 n k r) + eigh(r) + projections (feature side 2 n k^2 + 2 m k^2; example side 2 m n k + 2 m n^2)
              + D * 2 n r m'              (the fit is kept: later requests pay only D * 2 n r m')
    cholesky  PANEL_GRAM * M (2 n k r) + D * (factor(r) + solve 4 r^2 m' + scores 2 n k m')
                                          (nothing kept: every request pays it all)

in units of float64 matrix-multiply flops. A float64 Cholesky factorization of r costs CHOLESKY64 * r^3 of those
units, a float32 one CHOLESKY32 * r^3 plus REFINE_STEPS refinement steps of 6 r^2 m' (grass.attribute.cholesky,
mixed precision), an eigendecomposition EIGH * r^3. The constants are measured by bench/bench_attribute.py
(times of one eigh / Cholesky / matmul at k = 4096 on the 2-core development machine; see its JSON for the
load): they are ratios of times, so a faster or slower machine changes them little, a loaded one does (eigh's
tridiagonal reduction is memory-bound and suffers most from contention: its ratio grows, favouring Cholesky).
"""

from __future__ import annotations

from dataclasses import dataclass

from grass.errors import GrassError

# times relative to a float64 matmul of the same flop count (measured: bench/bench_attribute.py, see module doc)
CHOLESKY64 = 0.6  # float64 potrf of r: r^3 / 3 flops at about half the matmul rate
CHOLESKY32 = 0.3  # float32 potrf: about half the float64 time
EIGH = 8.0  # float64 syevd of r: ~13 float64 Cholesky factorizations on an idle machine (issue #16)
REFINE_STEPS = 2  # typical refinement steps of a mixed solve (0-1 on the default features at every damping)
PANEL_GRAM = 0.56  # grass.attribute.cholesky.system_matrix multiplies 36 of 64 panel pairs (PANELS = 8)

SOLVERS = ("auto", "eigh", "cholesky")


def check_solver(solver: str) -> str:
    """The solver name as a plain string; GrassError unless it is one of SOLVERS."""
    value = str(solver)
    if value not in SOLVERS:
        raise GrassError(f"tda.attributor.solver={value!r}; choose one of {list(SOLVERS)} "
                         "(auto: the cheaper of one eigendecomposition and one Cholesky factorization per damping)")
    return value


@dataclass(frozen=True)
class Request:
    """n train rows, k features, m queries held, D dampings asked, m' queries scored (per checkpoint)."""

    n: int
    k: int
    m: int
    dampings: int
    scored: int


def cholesky_precision(r: int, scored: int) -> str:
    """"mixed" (float32 factor + float64 refinement) when it is predicted cheaper than the float64 factor."""
    saved = (CHOLESKY64 - CHOLESKY32) * r ** 3
    return "mixed" if saved > REFINE_STEPS * 6.0 * r * r * scored else "float64"


def eigh_cost(req: Request, fitted: bool = False) -> float:
    """Predicted cost of one checkpoint by the eigendecomposition (0 fit cost when it is already fitted)."""
    n, k, m, r = req.n, req.k, req.m, min(req.n, req.k)
    per_damping = req.dampings * 2.0 * n * r * req.scored
    if fitted:
        return per_damping
    projections = 2.0 * n * k * k + 2.0 * m * k * k if k <= n else 2.0 * m * n * k + 2.0 * m * n * n
    return 2.0 * n * k * r + EIGH * r ** 3 + projections + per_damping


def cholesky_cost(req: Request) -> float:
    """Predicted cost of one checkpoint by one Cholesky factorization per damping."""
    n, k, r, s = req.n, req.k, min(req.n, req.k), req.scored
    if cholesky_precision(r, s) == "mixed":
        factor = CHOLESKY32 * r ** 3 + REFINE_STEPS * 6.0 * r * r * s
    else:
        factor = CHOLESKY64 * r ** 3
    scores = 2.0 * n * k * s if k <= n else 0.0
    rhs = 0.0 if k <= n else 2.0 * n * k * s
    return PANEL_GRAM * 2.0 * n * k * r + rhs + req.dampings * (factor + 4.0 * r * r * s + scores)


def choose_solver(req: Request, solver: str = "auto", fitted: bool = False) -> str:
    """"eigh" or "cholesky" for this request: the configured one, or under "auto" the cheaper prediction
    (an eigendecomposition already fitted costs only its rescales, so it is kept once made)."""
    solver = check_solver(solver)
    if solver != "auto":
        return solver
    return "eigh" if eigh_cost(req, fitted) <= cholesky_cost(req) else "cholesky"
