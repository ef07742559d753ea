"""Every bad input is a GrassError with a readable message (SPEC 3)."""

from __future__ import annotations

import pytest
import torch

from grass.compress.dense import Gaussian, Rademacher
from grass.compress.fjlt import FJLT
from grass.compress.grass_compressor import GraSS
from grass.compress.identity import Identity
from grass.compress.mask import RandomMask
from grass.compress.sjlt import SJLT
from grass.errors import GrassError

PROJECTING = [Gaussian, Rademacher, FJLT, SJLT, RandomMask, GraSS]


@pytest.mark.parametrize("cls", PROJECTING)
@pytest.mark.parametrize("k", [0, -3])
def test_non_positive_out_dim(cls, k):
    with pytest.raises(GrassError, match=rf"out_dim\) must be positive, got {k}"):
        cls(100, k)


@pytest.mark.parametrize("cls", PROJECTING + [Identity])
def test_non_positive_in_dim(cls):
    with pytest.raises(GrassError, match="in_dim must be positive, got 0"):
        cls(0, 8)


def test_identity_ignores_out_dim(caplog):
    with caplog.at_level("INFO", logger="grass.compress.identity"):
        comp = Identity(50, 8)
    assert comp.out_dim == 50 and "ignores proj_dim=8" in caplog.text


def test_mask_larger_than_input():
    with pytest.raises(
        GrassError, match=r"cannot select more coordinates than the layer/model has: proj_dim k=11 > in_dim d=10"
    ):
        RandomMask(10, 11)


@pytest.mark.parametrize("c", [0, 17, -1, 2.5, True])
def test_sjlt_bad_c(c):
    with pytest.raises(GrassError, match=r"c \(nonzeros per input coordinate\) must be an integer in 1\.\.16"):
        SJLT(100, 8, c=c)


@pytest.mark.parametrize("blowup", [0, 1.5])
def test_grass_bad_blowup(blowup):
    with pytest.raises(GrassError, match="blowup must be an integer >= 1"):
        GraSS(100, 8, blowup=blowup)


@pytest.mark.parametrize("cls", PROJECTING + [Identity])
@pytest.mark.parametrize("shape", [(30,), (2, 29), (2, 30, 1)])
def test_wrong_input_shape(cls, shape):
    comp = cls(30, 4)
    with pytest.raises(GrassError, match=r"expects input \[B, 30\], got"):
        comp(torch.zeros(shape))


def test_dense_negative_budget():
    with pytest.raises(GrassError, match="max_matrix_bytes must be >= 0"):
        Gaussian(10, 2, max_matrix_bytes=-1)
