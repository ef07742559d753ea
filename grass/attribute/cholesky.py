"""Damped solves by one Cholesky factorization per damping (SPEC 1.1 step 2): the solver for a few dampings,
where one eigendecomposition (grass.attribute.solver) would cost more than the grid (grass.attribute.cost chooses).

For train features Phi [n, k] and query features Q [m, k], with damping terms (a, b), a, b > 0, r = min(n, k):

    feature side (k <= n): M = Phi^T Phi [k, k],  rhs = Q^T [k, m],      X = (a M + b I)^{-1} rhs,  S = Phi X
    example side (k > n):  M = Phi Phi^T [n, n],  rhs = Phi Q^T [n, m],  X = (a M + b I)^{-1} rhs,  S = X

(the example side is the push-through identity of grass.attribute.solver). S [n, m] are the scores.

Precision. `float64`: the factor and solve in float64 (as exact as the eigendecomposition). `mixed` (few
right-hand sides): the factor in float32, then float64 iterative refinement X <- X + (L L^T)^{-1} R with the
residual R = rhs - (a M + b I) X in float64, until the a-posteriori bound on the score error

    ||S - S*||_F <= gain * ||R||_F,   gain = 1 / (2 sqrt(a b)) (feature side), 1 / b (example side)

is at most REFINE_TOL * ||S||_F. The bound is exact math: S - S* = Phi (a M + b I)^{-1} R on the feature side, and
the singular values of Phi (a Phi^T Phi + b I)^{-1} are sqrt(e) / (a e + b) <= 1 / (2 sqrt(a b)) over the
eigenvalues e >= 0 of Phi^T Phi; on the example side S - S* = (a M + b I)^{-1} R, whose norm is <= ||R|| / b. So a
mixed solve returns scores within REFINE_TOL (relative, Frobenius) of the exact ones, up to float64 rounding in
R. When the float32 factorization fails (the matrix is not positive definite in float32) or the bound is not met
after MAX_REFINE steps, the solve is redone with the float64 factor, and the result says so (`fell_back`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from grass.attribute.gram import CHUNK_ELEMENTS, GramAccumulator, row_chunks
from grass.errors import GrassError

REFINE_TOL = 1e-5  # relative Frobenius bound on the score error of a mixed solve (the acceptance is 1e-3)
MAX_REFINE = 8  # refinement steps before a mixed solve is redone in float64
PRECISIONS = ("float64", "mixed")


def feature_side(n: int, k: int) -> bool:
    """True when the k x k Gram is the smaller system (k <= n), as grass.attribute.solver decides."""
    return k <= n


def system_matrix(phi: Tensor) -> Tensor:
    """M [r, r] float64: Phi^T Phi (k <= n) or Phi Phi^T (k > n), accumulated from float64 chunks of Phi [n, k]."""
    n, k = phi.shape
    if feature_side(n, k):
        gram = GramAccumulator(k, phi.device)
        for block in row_chunks(phi):
            gram.add(block)
        return gram.gram
    cols = max(1, CHUNK_ELEMENTS // n)
    out = torch.zeros(n, n, dtype=torch.float64, device=phi.device)
    for start in range(0, k, cols):
        block = phi[:, start:start + cols].double()
        out += block @ block.T
    return out


def right_hand_side(phi: Tensor, queries: Tensor) -> Tensor:
    """rhs [r, m] float64: Q^T (feature side) or Phi Q^T (example side) for queries Q [m, k]."""
    n, k = phi.shape
    if feature_side(n, k):
        return queries.double().T.contiguous()
    cols = max(1, CHUNK_ELEMENTS // max(n, queries.shape[0]))
    out = torch.zeros(n, queries.shape[0], dtype=torch.float64, device=phi.device)
    for start in range(0, k, cols):
        out += phi[:, start:start + cols].double() @ queries[:, start:start + cols].double().T
    return out


def to_scores(phi: Tensor, x: Tensor) -> Tensor:
    """S [n, m] float32 from the solution X [r, m] float64: Phi X (feature side, by row chunks) or X itself."""
    n, k = phi.shape
    if not feature_side(n, k):
        return x.float()
    return torch.cat([block.double() @ x for block in row_chunks(phi)]).float()


@dataclass(frozen=True)
class SolveReport:
    """How one damped solve went: precision used, refinement steps, the score-error bound (relative, Frobenius;
    0 for float64 solves), and whether a mixed solve had to fall back to the float64 factor."""

    precision: str
    steps: int
    bound: float
    fell_back: bool


def solve_working_bytes(r: int, report: SolveReport) -> int:
    """Bytes damped_solve allocates inside for r x r: a M + b I in float64, plus its float32 copy and factor
    (mixed) and/or the float64 factor (float64, or a mixed solve that fell back)."""
    size = r * r
    mixed = 2 * size * 4 if report.precision == "mixed" or report.fell_back else 0
    float64 = size * 8 if report.precision == "float64" else 0
    return size * 8 + mixed + float64


def damped_solve(matrix: Tensor, rhs: Tensor, a: float, b: float, feature: bool,
                 precision: str = "float64") -> tuple[Tensor, SolveReport]:
    """X = (a M + b I)^{-1} rhs [r, m] float64 for M = matrix [r, r] float64 (symmetric PSD), rhs [r, m] float64.

    feature: True when M = Phi^T Phi (sets the error gain, see the module docstring). precision: "float64" or
    "mixed". GrassError unless a, b > 0 and precision is known.
    """
    if not (a > 0 and b > 0):
        raise GrassError(f"damped solve needs a > 0 and b > 0, got a={a}, b={b}")
    if precision not in PRECISIONS:
        raise GrassError(f"precision={precision!r}; choose one of {PRECISIONS}")
    system = matrix * a
    system.diagonal().add_(b)  # a M + b I [r, r] float64
    if precision == "mixed":
        solved = _mixed_solve(system, rhs, a, b, feature)
        if solved is not None:
            return solved
    factor, info = torch.linalg.cholesky_ex(system)
    if int(info) != 0:  # cannot happen in exact math (b > 0); rounding on a huge-norm M could still do it
        raise GrassError(f"a M + b I is not positive definite in float64 (a={a:g}, b={b:g}); raise the damping")
    return torch.cholesky_solve(rhs, factor), SolveReport("float64", 0, 0.0, precision == "mixed")


def _mixed_solve(system: Tensor, rhs: Tensor, a: float, b: float, feature: bool):
    """(X, report) by a float32 factor and float64 refinement, or None when the float32 path cannot meet REFINE_TOL."""
    factor, info = torch.linalg.cholesky_ex(system.float())
    if int(info) != 0:
        return None
    gain = 1.0 / (2.0 * math.sqrt(a * b)) if feature else 1.0 / b
    x = torch.cholesky_solve(rhs.float(), factor).double()
    for step in range(MAX_REFINE + 1):
        applied = system @ x  # (a M + b I) X [r, m] float64
        residual = rhs - applied
        if feature:  # ||Phi X||_F^2 = trace(X^T M X) = (<X, (aM + bI) X> - b ||X||^2) / a: no extra product
            score_norm = math.sqrt(max(float((x * applied).sum() - b * (x * x).sum()) / a, 0.0))
        else:
            score_norm = float(x.norm())
        bound = gain * float(residual.norm())
        if bound <= REFINE_TOL * score_norm or bound == 0.0:
            return x, SolveReport("mixed", step, bound / score_norm if score_norm else 0.0, False)
        if step < MAX_REFINE:
            x += torch.cholesky_solve(residual.float(), factor).double()
    return None
