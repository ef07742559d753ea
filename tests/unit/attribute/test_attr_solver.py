"""DampedSolver == a direct float64 solve of (a Phi^T Phi + b I), in both regimes (k <= n and k > n)."""

import pytest
import torch

from grass.attribute.solver import DampedSolver
from grass.errors import GrassError

DAMPINGS = [(1.0, 1e-3), (1.0, 1.0), (1 / 40, 0.37), (2.5, 100.0)]


def _direct(phi: torch.Tensor, q: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Phi (a Phi^T Phi + b I)^{-1} Q^T in float64, [n, m]."""
    phi, q = phi.double(), q.double()
    system = a * phi.T @ phi + b * torch.eye(phi.shape[1], dtype=torch.float64)
    return phi @ torch.linalg.solve(system, q.T)


@pytest.mark.parametrize("n,k", [(40, 12), (12, 40)])
@pytest.mark.parametrize("a,b", DAMPINGS)
def test_solver_matches_direct_solve(n, k, a, b):
    gen = torch.Generator().manual_seed(n * 100 + k)
    phi = torch.randn(n, k, generator=gen)
    q = torch.randn(7, k, generator=gen)
    solver = DampedSolver(phi)
    got = solver.scores(solver.project_queries(q), a, b)
    want = _direct(phi, q, a, b)
    assert got.dtype == torch.float32 and got.shape == (n, 7)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("n,k", [(40, 12), (12, 40)])
def test_solver_properties_and_rank_deficient_features(n, k):
    gen = torch.Generator().manual_seed(3)
    # rank 4: many zero eigenvalues (possibly tiny negative ones before clamping)
    phi = (torch.randn(n, 4, generator=gen) @ torch.randn(4, k, generator=gen)).to(torch.float64)
    solver = DampedSolver(phi)
    assert (solver.n, solver.dim) == (n, k)
    assert solver.trace == pytest.approx(float((phi * phi).sum()), rel=1e-10)
    q = torch.randn(5, k, generator=gen, dtype=torch.float64)
    projected = solver.project_queries(q)
    for a, b in DAMPINGS:
        want = _direct(phi, q, a, b)
        torch.testing.assert_close(solver.scores(projected, a, b).double(), want,
                                   rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_solver_accepts_low_precision_input():
    phi = torch.randn(30, 6, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    solver = DampedSolver(phi)
    want = _direct(phi, phi[:3], 1.0, 0.5)  # the same bf16 values, solved in float64
    torch.testing.assert_close(solver.scores(solver.project_queries(phi[:3]), 1.0, 0.5).double(), want,
                               rtol=1e-4, atol=1e-4)


def test_solver_rejects_bad_input():
    phi = torch.randn(10, 4)
    with pytest.raises(GrassError, match="non-finite"):
        DampedSolver(torch.where(torch.arange(4) == 2, float("nan"), phi))
    solver = DampedSolver(phi)
    with pytest.raises(GrassError, match="non-finite"):
        solver.project_queries(torch.full((2, 4), float("inf")))
    with pytest.raises(GrassError, match="dim"):
        solver.project_queries(torch.randn(2, 5))
    with pytest.raises(GrassError, match="b > 0"):
        solver.scores(solver.project_queries(phi[:2]), 1.0, 0.0)


@pytest.mark.parametrize("n,k", [(12, 5), (4, 9)])
def test_release_drops_the_eigenbasis_and_blocks_later_projection(n, k):
    phi = torch.randn(n, k, generator=torch.Generator().manual_seed(1))
    solver = DampedSolver(phi)
    projected = solver.project_queries(phi[:3])
    before = solver.scores(projected, 1.0, 0.5)
    solver.release()
    r = min(n, k)
    # what is left: L [n, r] float32 and the eigenvalues [r]; no float64 basis, no reference to Phi
    assert [tuple(t.shape) for t in solver.held()] == [(n, r), (r,)]
    assert all(t.data_ptr() != phi.data_ptr() for t in solver.held())
    torch.testing.assert_close(solver.scores(projected, 1.0, 0.5), before)
    with pytest.raises(GrassError, match="released"):
        solver.project_queries(torch.randn(2, k))
