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

from grass.attribute.gram import CHUNK_ELEMENTS
from grass.errors import GrassError

REFINE_TOL = 1e-5  # relative Frobenius bound on the score error of a mixed solve (the acceptance is 1e-3)
MAX_REFINE = 8  # refinement steps before a mixed solve is redone in float64
PRECISIONS = ("float64", "mixed")


def feature_side(n: int, k: int) -> bool:
    """True when the k x k Gram is the smaller system (k <= n), as grass.attribute.solver decides."""
    return k <= n


PANELS = 8  # column panels of the symmetric product: only the lower ones are multiplied (~56 % of a full matmul)
SLAB_ELEMENTS = 1 << 22  # float64 elements of one upcast slab of Phi (32 MiB)


def slab_bytes(n: int, k: int) -> int:
    """Bytes of the float64 slab system_matrix upcasts at a time (for grass.attribute.memory)."""
    r = min(n, k)
    return min(max(n, k), max(1, SLAB_ELEMENTS // r)) * r * 8


def system_matrix(phi: Tensor) -> Tensor:
    """M [r, r] float64: Phi^T Phi (k <= n) or Phi Phi^T (k > n) for Phi [n, k], exactly symmetric.

    Float64 slabs S [t, r] of Phi (row blocks on the feature side, transposed column blocks on the example side)
    are accumulated as M += S^T S, multiplying only the PANELS column panels on and below the diagonal; the upper
    triangle is then copied from the lower one.
    """
    n, k = phi.shape
    r = min(n, k)
    rows = max(1, SLAB_ELEMENTS // r)
    if feature_side(n, k):
        slabs = (phi[start:start + rows].double() for start in range(0, n, rows))
    else:
        slabs = (phi[:, start:start + rows].double().T for start in range(0, k, rows))
    out = torch.zeros(r, r, dtype=torch.float64, device=phi.device)
    width = -(-r // PANELS)
    for slab in slabs:  # [t, r]
        for start in range(0, r, width):
            stop = min(r, start + width)
            out[start:, start:stop].addmm_(slab[:, start:].T, slab[:, start:stop])
    for start in range(0, r, width):
        stop = min(r, start + width)
        out[start:stop, stop:] = out[stop:, start:stop].T
    return out


def right_hand_side(phi: Tensor, queries: Tensor) -> Tensor:
    """rhs [r, m] float64: Q^T (feature side) or Phi Q^T (example side) for queries Q [m, k]."""
    n, k = phi.shape
    if feature_side(n, k):
        return queries.double().T.contiguous()
    cols = max(1, SLAB_ELEMENTS // max(n, queries.shape[0]))
    out = torch.zeros(n, queries.shape[0], dtype=torch.float64, device=phi.device)
    for start in range(0, k, cols):
        out += phi[:, start:start + cols].double() @ queries[:, start:start + cols].double().T
    return out


def to_scores(phi: Tensor, x: Tensor) -> Tensor:
    """S [n, m] float32 from the solution X [r, m] float64: Phi X (feature side, by float64 slabs of at most
    SLAB_ELEMENTS) or X itself."""
    n, k = phi.shape
    if not feature_side(n, k):
        return x.float()
    rows = max(1, SLAB_ELEMENTS // k)
    return torch.cat([(phi[start:start + rows].double() @ x).float() for start in range(0, n, rows)])


@dataclass(frozen=True)
class SolveReport:
    """How one damped solve went: precision used, refinement steps, the score-error bound (relative, Frobenius;
    0 for float64 solves), and whether a mixed solve had to fall back to the float64 factor."""

    precision: str
    steps: int
    bound: float
    fell_back: bool


def solve_working_bytes(r: int, report: SolveReport, consumed: bool = False) -> int:
    """Bytes damped_solve allocates inside for r x r (besides X): a mixed solve's float32 system and factor; a float64
    solve's factor and, unless it consumed M, its float64 system a M + b I."""
    size = r * r
    mixed = 2 * size * 4 if report.precision == "mixed" or report.fell_back else 0
    float64 = size * 8 * (1 if consumed else 2) if report.precision == "float64" else 0
    return mixed + float64


def damped_solve(matrix: Tensor, rhs: Tensor, a: float, b: float, feature: bool,
                 precision: str = "float64", consume: bool = False) -> tuple[Tensor, SolveReport]:
    """X = (a M + b I)^{-1} rhs [r, m] float64 for M = matrix [r, r] float64 (symmetric PSD), rhs [r, m] float64.

    feature: True when M = Phi^T Phi (sets the error gain, see the module docstring). precision: "float64" or
    "mixed". consume: M is not needed afterwards, so a float64 solve builds a M + b I in its memory (one [r, r]
    float64 matrix less). GrassError unless a, b > 0 and precision is known.
    """
    if not (a > 0 and b > 0):
        raise GrassError(f"damped solve needs a > 0 and b > 0, got a={a}, b={b}")
    if precision not in PRECISIONS:
        raise GrassError(f"precision={precision!r}; choose one of {PRECISIONS}")
    if precision == "mixed":
        solved = _mixed_solve(matrix, rhs, a, b, feature)
        if solved is not None:
            return solved
    system = matrix.mul_(a) if consume else matrix * a
    system.diagonal().add_(b)  # a M + b I [r, r] float64
    factor, info = torch.linalg.cholesky_ex(system)
    del system
    if int(info) != 0:  # cannot happen in exact math (b > 0); rounding on a huge-norm M could still do it
        raise GrassError(f"a M + b I is not positive definite in float64 (a={a:g}, b={b:g}); raise the damping")
    return torch.cholesky_solve(rhs, factor), SolveReport("float64", 0, 0.0, precision == "mixed")


def _float32_system(matrix: Tensor, a: float, b: float) -> Tensor:
    """a M + b I rounded to float32 [r, r], built by row blocks (no [r, r] float64 temporary)."""
    out = torch.empty(matrix.shape, dtype=torch.float32, device=matrix.device)
    rows = max(1, CHUNK_ELEMENTS // max(1, matrix.shape[1]) // 4)
    for start in range(0, matrix.shape[0], rows):
        out[start:start + rows] = matrix[start:start + rows] * a
    out.diagonal().add_(b)
    return out


def _mixed_solve(matrix: Tensor, rhs: Tensor, a: float, b: float, feature: bool):
    """(X, report) by a float32 factor and float64 refinement, or None when the float32 path cannot meet REFINE_TOL."""
    factor, info = torch.linalg.cholesky_ex(_float32_system(matrix, a, b))
    if int(info) != 0 or not torch.isfinite(factor).all():
        return None
    gain = 1.0 / (2.0 * math.sqrt(a * b)) if feature else 1.0 / b
    x = torch.cholesky_solve(rhs.float(), factor).double()
    for step in range(MAX_REFINE + 1):
        applied = (matrix @ x).mul_(a).add_(x, alpha=b)  # (a M + b I) X [r, m] float64
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
