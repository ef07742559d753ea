"""grass.attribute.gram: the chunked fit equals the one-shot DampedSolver (and a direct float64 solve) for
every chunk size; the damping rules are SPEC 1.1's relative and SPEC 1.2's absolute damping."""

import pytest
import torch

from grass.attribute.gram import GramAccumulator, absolute_terms, fit_block_eigens, fit_eigen, relative_terms
from grass.attribute.solver import DampedSolver
from grass.errors import GrassError

N, K, M = 53, 9, 6


def _features(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N, K, generator=gen) * torch.linspace(0.1, 3.0, K), torch.randn(M, K, generator=gen)


@pytest.mark.parametrize("chunk", [1, 7, 16, N, 1000])
@pytest.mark.parametrize("damping", [1e-4, 0.1, 10.0])
def test_chunked_fit_equals_the_one_shot_solver(chunk, damping):
    phi, q = _features()
    eigen = fit_eigen((phi[s:s + chunk] for s in range(0, N, chunk)), K)
    solver = DampedSolver(phi)
    assert eigen.n == N and eigen.trace == pytest.approx(solver.trace, rel=1e-12)
    a, b = relative_terms(eigen.n, eigen.dim, eigen.trace, damping)
    chunked = (phi.double() @ eigen.inverse(a, b) @ q.double().T)
    one_shot = solver.scores(solver.project_queries(q), a, b).double()
    torch.testing.assert_close(chunked, one_shot, rtol=1e-5, atol=1e-6 * float(one_shot.abs().max()))
    # against a direct float64 solve of (F + lambda trace(F) / k I)
    fisher = phi.double().T @ phi.double() / N
    direct = phi.double() @ torch.linalg.solve(
        fisher + damping * fisher.trace() / K * torch.eye(K, dtype=torch.float64), q.double().T
    )
    torch.testing.assert_close(
        phi.double() @ eigen.relative_inverse(damping) @ q.double().T,
        direct,
        rtol=1e-9,
        atol=1e-10 * float(direct.abs().max()),
    )


def test_chunk_sizes_give_bit_close_grams():
    phi, _ = _features(1)
    grams = []
    for chunk in (1, 5, N):
        acc = GramAccumulator(K)
        for s in range(0, N, chunk):
            acc.add(phi[s : s + chunk])
        grams.append(acc.gram)
    for gram in grams[1:]:
        torch.testing.assert_close(gram, grams[0], rtol=1e-13, atol=1e-12)


def test_block_fit_is_one_fit_per_block():
    phi, _ = _features(2)
    blocks = {"a": phi[:, :4], "b": phi[:, 4:]}
    chunks = ({name: x[s : s + 10] for name, x in blocks.items()} for s in range(0, N, 10))
    eigens = fit_block_eigens(chunks, {"a": 4, "b": 5})
    for name, x in blocks.items():
        alone = fit_eigen([x], x.shape[1])
        torch.testing.assert_close(eigens[name].inverse(1.0, 0.5), alone.inverse(1.0, 0.5), rtol=1e-10, atol=1e-12)


def test_absolute_inverse_is_trak_on_scaled_features():
    phi, q = _features(4)
    p, lam = 500, 0.3
    scaled, q_scaled = phi.double() / p**0.5, q.double() / p**0.5
    direct = scaled @ torch.linalg.solve(scaled.T @ scaled + lam * torch.eye(K, dtype=torch.float64), q_scaled.T)
    got = phi.double() @ fit_eigen([phi], K).absolute_inverse(p, lam) @ q.double().T
    torch.testing.assert_close(got, direct, rtol=1e-9, atol=1e-12)


def test_damping_rules_follow_spec():
    assert relative_terms(n=10, dim=4, trace=20.0, damping=0.5) == (0.1, 0.5 * 20.0 / 40)
    assert absolute_terms(num_params=100, damping=0.3) == (0.01, 0.3)


def test_bad_input_is_refused():
    with pytest.raises(GrassError, match="empty"):
        GramAccumulator(3).eigen()
    with pytest.raises(GrassError, match=r"\[rows, 3\]"):
        GramAccumulator(3).add(torch.zeros(2, 4))
    with pytest.raises(GrassError, match="zero"):
        fit_eigen([torch.zeros(4, 3)], 3).relative_inverse(0.1)
    with pytest.raises(GrassError, match="a > 0 and b > 0"):
        fit_eigen([torch.ones(4, 3)], 3).inverse(1.0, 0.0)
    with pytest.raises(GrassError, match="covers blocks"):
        fit_block_eigens([{"a": torch.ones(2, 2)}], {"a": 2, "b": 2})
