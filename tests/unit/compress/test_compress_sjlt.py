"""SJLT: dense path == sparse path == x @ matrix() for every c, sparsity and input dtype (SPEC 3, 7)."""

from __future__ import annotations

import pytest
import torch

from grass.compress.sjlt import SJLT


def _input(zero_frac: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 500, generator=g)
    return x * (torch.rand(6, 500, generator=g) >= zero_frac)


@pytest.mark.parametrize("c", [1, 2, 4, 16])
@pytest.mark.parametrize("zero_frac", [0.0, 0.9, 1.0])
def test_paths_agree_with_matrix(c, zero_frac):
    comp = SJLT(500, 64, seed=3, c=c)
    x = _input(zero_frac)
    reference = x @ comp.matrix()
    dense, sparse = comp.dense_path(x), comp.sparse_path(x)
    torch.testing.assert_close(dense, sparse, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dense, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(comp(x), reference, rtol=1e-5, atol=1e-5)
    assert comp(x).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("zero_frac", [0.0, 0.9])
def test_half_inputs_accumulate_in_float32(dtype, zero_frac):
    """Half inputs give exactly the fp32 answer for the upcast input, and near the fp32 input's answer."""
    comp = SJLT(500, 64, seed=3, c=2)
    x = _input(zero_frac, seed=1)
    low = x.to(dtype)
    for path in (comp, comp.dense_path, comp.sparse_path):
        out = path(low)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, path(low.float()), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(out, x @ comp.matrix(), rtol=0, atol=0.1 if dtype == torch.bfloat16 else 0.02)


@pytest.mark.parametrize("c", [1, 16])
def test_empty_batch(c):
    comp = SJLT(500, 64, seed=0, c=c)
    empty = torch.zeros(0, 500)
    for path in (comp, comp.dense_path, comp.sparse_path):
        assert path(empty).shape == (0, 64)


def test_matrix_structure():
    """Row j holds s_r(j) / sqrt(c) at column h_r(j) for r < c (colliding buckets add), nothing else."""
    comp = SJLT(200, 32, seed=9, c=4)
    m = comp.matrix()
    assert m.shape == (200, 32) and m.dtype == torch.float32
    assert set(comp.signs.abs().unique().tolist()) == {0.5}
    expected = torch.zeros(200, 32)
    for j in range(200):
        for r in range(4):
            expected[j, comp.buckets[r, j]] += comp.signs[r, j]
    assert torch.equal(m, expected)


def test_different_c_gives_different_map():
    x = _input(0.0)
    assert not torch.equal(SJLT(500, 64, seed=3, c=1)(x), SJLT(500, 64, seed=3, c=2)(x))
