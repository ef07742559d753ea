"""GraSS's fused mask + SJLT (C++ `sjlt_forward_masked`) == the two stages one after the other (SPEC 3).

The fused op reads only the selected columns of x; it must equal sjlt_forward(x[:, cols]) bit for bit, on
every per-tile branch (dense, half zero, all zero, mostly zero), every input dtype, panels and left-over rows.
"""

from __future__ import annotations

import pytest
import torch

from grass.compress.grass_compressor import GraSS
from grass.compress.mask import IndexMask
from grass.kernels import dispatch, sjlt_cpu

from .test_kernels_sjlt import _mixed_tiles, _tables


@pytest.fixture
def masked(cpp):
    """The fused op (built with the plain one: conftest's `cpp` fails the test if the kernel did not build)."""
    return sjlt_cpu.sjlt_forward_masked


def _cols(d: int, n: int, seed: int = 4) -> torch.Tensor:
    return torch.randperm(d, generator=torch.Generator().manual_seed(seed))[:n].sort().values


class _GivenMaskGraSS(GraSS):
    """GraSS over a given index set, as GraSSSelective builds it from a learned mask file."""

    def _make_mask(self, k_prime: int) -> IndexMask:
        return IndexMask(self.in_dim, _cols(self.in_dim, k_prime, seed=9))


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("rows", [1, 8, 21])  # a lone row, one panel, panels + 5 left-over rows
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_fused_equals_gather_then_sjlt_bit_for_bit(masked, c, rows, dtype, index_dtype):
    d, n, k = 9000, 4501, 97  # n spans three 2048-column tiles, the last one ragged
    x = _mixed_tiles(rows, d).to(dtype)
    cols = _cols(d, n)
    h, s, scale = _tables(c, n, k, index_dtype, int8_signs=index_dtype == torch.int32)
    expected = sjlt_cpu.sjlt_forward(x[:, cols].contiguous(), h, s, k, scale)
    assert torch.equal(masked(x, cols, h, s, k, scale), expected)


def test_fused_rejects_bad_columns(masked):
    h, s, scale = _tables(1, 5, 8)
    x = torch.randn(3, 10)
    with pytest.raises(RuntimeError, match="outside"):
        masked(x, torch.tensor([0, 1, 2, 3, 10]), h, s, 8, scale)
    with pytest.raises(RuntimeError, match="n=5"):
        masked(x, torch.tensor([0, 1, 2, 3]), h, s, 8, scale)
    with pytest.raises(RuntimeError, match="int64"):
        masked(x, torch.tensor([0, 1, 2, 3, 4], dtype=torch.int32), h, s, 8, scale)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_grass_compressor_equals_its_two_stages(masked, backend):
    """GraSS and GraSS with a selective mask: the dispatched path == sjlt(mask(x)), also across row chunks."""
    x = _mixed_tiles(19, 3000)
    for comp in (GraSS(3000, 64, seed=3, c=2, sparse_dim=700, backend=backend),
                 _GivenMaskGraSS(3000, 64, seed=3, sparse_dim=700, backend=backend)):
        expected = comp.unfused(x)
        assert comp.backend_used == backend
        out = comp(x)
        assert comp.backend_used == backend
        if backend == "cpp":
            assert torch.equal(out, expected)
        else:
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    h, s, _ = _tables(1, 700, 64)
    cols = _cols(3000, 700)
    whole, _ = dispatch.sjlt_project(x, h, s, 64, backend=backend, cols=cols)
    chunked, _ = dispatch.sjlt_project(x, h, s, 64, backend=backend, cols=cols, max_chunk_elements=3000 * 4)
    assert torch.equal(chunked, whole)
