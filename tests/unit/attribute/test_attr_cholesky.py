"""grass.attribute.cholesky and the attributors' Cholesky path: the same scores as the float64 eigh reference at
every damping of the default grid, on features as ill-conditioned as the default run's (issue #16)."""

import math

import pytest
import torch

from grass.attribute.attributors import InfluenceAttributor, TRAKAttributor
from grass.attribute.cholesky import REFINE_TOL, damped_solve, feature_side, right_hand_side, system_matrix, to_scores
from grass.config import GrassConfig
from grass.errors import GrassError

GRID = list(GrassConfig().damping_grid)  # 1e-7 ... 100
P = 1000  # TRAK's num_params: a = 1 / p


def ill_conditioned(n: int, k: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train [n, k] and query [m, k] float32 features whose Gram / p spans ~6 decades (1e-5 .. 10), like the
    default run's (eig(Phi^T Phi) / p from 5e-6 to 9.2)."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(0.5, -2.5, k) * math.sqrt(P / max(n, k))
    return torch.randn(n, k, generator=g) * scale, torch.randn(m, k, generator=g) * scale


def direct(phi: torch.Tensor, q: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Phi (a Phi^T Phi + b I)^{-1} Q^T [n, m] by a float64 eigendecomposition (the reference)."""
    phi, q = phi.double(), q.double()
    e, v = torch.linalg.eigh(phi.T @ phi)
    return (phi @ v) @ torch.diag(1.0 / (a * e.clamp_min(0) + b)) @ (q @ v).T


def rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want).norm() / want.norm())


@pytest.mark.parametrize("n,k", [(90, 60), (40, 70)])  # feature side (k <= n) and example side (k > n)
@pytest.mark.parametrize("precision", ["float64", "mixed"])
def test_damped_solve_matches_the_eigh_reference_at_every_damping(n, k, precision):
    phi, q = ill_conditioned(n, k, 5, seed=n + k)
    matrix, rhs, feature = system_matrix(phi), right_hand_side(phi, q), feature_side(n, k)
    assert matrix.shape == (min(n, k),) * 2 and rhs.shape == (min(n, k), 5)
    for lam in GRID:
        x, report = damped_solve(matrix, rhs, 1.0 / P, lam, feature, precision)
        want = direct(phi, q, 1.0 / P, lam)
        error = rel(to_scores(phi, x), want)
        assert error <= 1e-4, (lam, error, report)
        assert report.precision == precision and not report.fell_back
        if precision == "mixed":  # the stated bound holds and is below the tolerance (float32 output aside)
            assert report.bound <= REFINE_TOL
            exact = rel(phi.double() @ x if feature else x, want)
            assert exact <= report.bound * 1.01 + 1e-9, (lam, exact, report)


def test_mixed_solve_falls_back_to_float64_when_float32_cannot_factor():
    # a M + b I with huge entries and a tiny b is positive definite in float64, not after rounding to float32
    g = torch.Generator().manual_seed(0)
    phi = (torch.randn(30, 1, generator=g) @ torch.randn(1, 20, generator=g)).double() * 1e4
    phi += 0.1 * torch.randn(30, 20, generator=g, dtype=torch.float64)
    q = torch.randn(2, 20, generator=g, dtype=torch.float64)
    x, report = damped_solve(system_matrix(phi), right_hand_side(phi, q), 1.0, 1e-2, True, "mixed")
    assert report.fell_back and report.precision == "float64"
    assert rel(phi @ x, direct(phi, q, 1.0, 1e-2)) <= 1e-4  # cond ~1e11: the float64 reference is that close


def test_damped_solve_refuses_bad_terms():
    matrix = torch.eye(3, dtype=torch.float64)
    with pytest.raises(GrassError, match="b > 0"):
        damped_solve(matrix, torch.ones(3, 1, dtype=torch.float64), 1.0, 0.0, True)
    with pytest.raises(GrassError, match="precision"):
        damped_solve(matrix, torch.ones(3, 1, dtype=torch.float64), 1.0, 1.0, True, "float16")


def _filled(cls, solver, n, k, m, checkpoints=2):
    attributor = cls(solver=solver)
    for c in range(checkpoints):
        phi, q = ill_conditioned(n, k, m, seed=10 * c + n)
        weight = torch.rand(n, generator=torch.Generator().manual_seed(c))
        attributor.add_checkpoint(phi, q, weight, P)
    return attributor


@pytest.mark.parametrize("cls", [TRAKAttributor, InfluenceAttributor])
@pytest.mark.parametrize("n,k", [(120, 80), (40, 70)])
def test_attributor_cholesky_and_auto_match_eigh_at_every_damping(cls, n, k):
    """The acceptance check: scores within 1e-3 (relative, Frobenius) of float64 eigh at every damping of the grid,
    on the validation-sized query subset (few queries: the mixed float32 path on the feature side) and on all."""
    val = torch.tensor([3])
    reference = _filled(cls, "eigh", n, k, 12)
    want_grid, want_all = reference.scores_grid(GRID, val), reference.scores(1e-3)
    for solver in ("cholesky", "auto"):
        attributor = _filled(cls, solver, n, k, 12)
        got = attributor.scores_grid(GRID, val)
        assert attributor.last_solver == "cholesky"
        for lam in GRID:
            assert got[lam].shape == (n, 1) and got[lam].dtype == torch.float32
            assert rel(got[lam], want_grid[lam].double()) <= 1e-3, (solver, lam)
        assert rel(attributor.scores(1e-3), want_all.double()) <= 1e-3
    if feature_side(n, k):  # 1 query against r = 80: the float32 factor with refinement was used
        assert any(report.precision == "mixed" for report in attributor.solve_reports)


def test_eigh_path_keeps_no_eigenbasis_and_releases_the_features():
    n, k, m = 80, 50, 6
    attributor = _filled(TRAKAttributor, "eigh", n, k, m)
    attributor.scores_grid(GRID[:3], torch.tensor([0, 1]))
    held = attributor._held()
    # per checkpoint: L [n, k] float32, eigenvalues [k], R [m, k]; plus the TRAK weights [n]: no [k, k] matrix
    assert sorted(tuple(t.shape) for t in held) == sorted([(n, k), (k,), (m, k)] * 2 + [(n,)])
    assert attributor.meter.held == sum(t.untyped_storage().nbytes() for t in held)
    assert attributor.meter.peak >= attributor.meter.held + k * k * 8  # the fit's Gram / eigenbasis was counted
    assert len(attributor.checkpoint_peaks) == 2 and min(attributor.checkpoint_peaks) > 0


def test_auto_keeps_only_references_to_the_features():
    attributor = _filled(InfluenceAttributor, "auto", 60, 30, 4)
    attributor.scores_grid(GRID, torch.tensor([1]))
    assert attributor.last_solver == "cholesky"
    # nothing but the caller's own features (no copies, no [r, r] matrix) stays between calls
    assert sorted(tuple(t.shape) for t in attributor._held()) == [(4, 30), (4, 30), (60, 30), (60, 30)]


def test_solver_choice_is_checked():
    with pytest.raises(GrassError, match="solver"):
        TRAKAttributor(solver="qr")
