"""Dense maps (materialised == streamed) and the Walsh-Hadamard transform behind FJLT (SPEC 3)."""

from __future__ import annotations

import math

import pytest
import torch

from grass.compress.dense import BLOCK_ROWS, Gaussian, Rademacher
from grass.compress.fjlt import FJLT, walsh_hadamard
from grass.errors import GrassError


@pytest.mark.parametrize("cls", [Gaussian, Rademacher])
def test_materialised_equals_streamed(cls):
    """Forcing block-by-block regeneration (max_matrix_bytes=0) changes neither the matrix nor a bit of the output."""
    d, k = 2 * BLOCK_ROWS + 100, 16  # two full blocks and a partial one
    cached, streamed = cls(d, k, seed=4), cls(d, k, seed=4, max_matrix_bytes=0)
    assert cached.materialised and not streamed.materialised
    x = torch.randn(3, d, generator=torch.Generator().manual_seed(0))
    out = cached(x)
    assert torch.equal(out, cached(x))  # second call reads the cache
    assert torch.equal(out, streamed(x))
    assert torch.equal(cached.matrix(), streamed.matrix())
    torch.testing.assert_close(out, x @ cached.matrix(), rtol=1e-4, atol=1e-4)


def test_rademacher_entries():
    m = Rademacher(100, 25, seed=1).matrix()
    assert torch.equal(m.abs(), torch.full_like(m, 0.2)) and (m > 0).any() and (m < 0).any()


def _sylvester(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


@pytest.mark.parametrize("n", [1, 2, 4, 8, 32, 128, 1024])
@pytest.mark.parametrize("max_factor", [2, 8, 128])
def test_walsh_hadamard_equals_sylvester_matrix(n, max_factor):
    """The Kronecker-factored transform (one to ten factors) equals the explicit matrix product."""
    x = torch.randn(5, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    torch.testing.assert_close(walsh_hadamard(x, max_factor=max_factor), x @ _sylvester(n).double())


def test_walsh_hadamard_rejects_other_widths():
    with pytest.raises(GrassError, match="power-of-two"):
        walsh_hadamard(torch.zeros(2, 6))


def test_fjlt_explicit_map():
    """FJLT(x) = (x * D) H[:d, I] / sqrt(k) with the padded Sylvester matrix H."""
    d, k = 20, 8
    comp = FJLT(d, k, seed=2)
    assert comp.padded_dim == 32
    h = _sylvester(32)[:d]
    expected = (comp.signs[:, None] * h)[:, comp.coords] / math.sqrt(k)
    torch.testing.assert_close(comp(torch.eye(d)), expected)


@pytest.mark.parametrize("d,padded", [(1, 1), (5, 8), (8, 8), (3000, 4096)])
def test_fjlt_padding(d, padded):
    assert FJLT(d, 1, seed=0).padded_dim == padded


def test_fjlt_k_larger_than_padded_size():
    assert FJLT(5, 8).out_dim == 8  # k <= 2^q is allowed even when k > d
    with pytest.raises(GrassError, match=r"k=9 exceeds the padded Hadamard size 2\^q=8"):
        FJLT(5, 9)
