"""IndexMask / RandomMask selection and GraSS composition (SPEC 3)."""

from __future__ import annotations

import logging

import pytest
import torch

from grass.compress.grass_compressor import GraSS
from grass.compress.mask import IndexMask, RandomMask
from grass.compress.sjlt import SJLT
from grass.errors import GrassError
from grass.seeding import derive_seed


def test_index_mask_sorts_and_gathers():
    mask = IndexMask(10, torch.tensor([7, 2, 5]))
    assert mask.indices.tolist() == [2, 5, 7] and mask.out_dim == 3
    x = torch.arange(20.0).reshape(2, 10).to(torch.bfloat16)
    out = mask(x)
    assert out.dtype == torch.float32
    assert out.tolist() == [[2.0, 5.0, 7.0], [12.0, 15.0, 17.0]]
    torch.testing.assert_close(out, x.float() @ mask.matrix())


@pytest.mark.parametrize(
    "indices,fragment",
    [([1, 1], "distinct"), ([0, 10], r"lie in \[0, 10\)"), ([-1], r"lie in \[0, 10\)"), ([0.5], "integer")],
)
def test_index_mask_rejects_bad_indices(indices, fragment):
    with pytest.raises(GrassError, match=fragment):
        IndexMask(10, torch.tensor(indices))


def test_random_mask_indices():
    mask = RandomMask(1000, 100, seed=5)
    idx = mask.indices
    assert idx.dtype == torch.int64 and idx.numel() == 100
    assert torch.equal(idx, idx.sort().values) and idx.unique().numel() == 100
    assert 0 <= int(idx.min()) and int(idx.max()) < 1000
    assert RandomMask(1000, 1000, seed=5).indices.tolist() == list(range(1000))  # k = d keeps everything


def test_grass_is_mask_then_sjlt():
    comp = GraSS(500, 16, seed=8, blowup=4, c=2)
    assert comp.k_prime == 64
    mask = RandomMask(500, 64, seed=derive_seed(8, "mask"))
    sjlt = SJLT(64, 16, seed=derive_seed(8, "sjlt"), c=2)
    x = torch.randn(4, 500, generator=torch.Generator().manual_seed(0))
    assert torch.equal(comp(x), sjlt(mask(x)))
    torch.testing.assert_close(comp(x), x @ comp.matrix(), rtol=1e-5, atol=1e-5)


def test_grass_clamps_mask_to_input_width(caplog):
    with caplog.at_level(logging.INFO, logger="grass.compress.grass_compressor"):
        comp = GraSS(300, 100, seed=0, blowup=4)
    assert comp.k_prime == 300
    assert "clamped to 300" in caplog.text
    assert comp(torch.randn(2, 300)).shape == (2, 100)
