"""LDS: a hand-computed case, monotone invariance, undefined queries, +-1 extremes, bootstrap CI."""

import math

import pytest
import torch

from grass.errors import GrassError
from grass.lds.metric import bootstrap_ci, lds, spearman_columns

# Hand-computed case, M = 4 subsets, n = 3 train examples, m = 2 queries.
SCORES = torch.tensor([[1.0, 0.0], [2.0, 1.0], [4.0, -1.0]])  # [n, m]
MASKS = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=torch.bool)  # [M, n]
TRUTH = torch.tensor([[10.0, 5.0], [20.0, 6.0], [30.0, 7.0], [40.0, 8.0]])  # [M, m]
# yhat = MASKS @ SCORES: column 0 = [1, 2, 4, 3], column 1 = [0, 1, -1, 1].
# Query 0: ranks [1, 2, 4, 3] vs [1, 2, 3, 4], no ties: d = [0, 0, 1, -1], rho = 1 - 6 * 2 / (4 * 15) = 0.8.
# Query 1: ranks with ties averaged [2, 3.5, 1, 3.5] vs [1, 2, 3, 4]; centred [-.5, 1, -1.5, 1] and
#   [-1.5, -.5, .5, 1.5]: sum of products = .75 - .5 - .75 + 1.5 = 1, sums of squares 4.5 and 5,
#   rho = 1 / sqrt(22.5) = 0.21082.
# LDS = (0.8 + 0.21082) / 2 = 0.50541.
RHO = [0.8, 1 / math.sqrt(22.5)]


def test_hand_computed_case():
    result = lds(SCORES, MASKS, TRUTH)
    torch.testing.assert_close(result.per_query, torch.tensor(RHO, dtype=torch.float64))
    assert result.mean == pytest.approx(sum(RHO) / 2)
    assert (result.n_queries, result.n_undefined) == (2, 0)


def test_invariant_to_monotone_transform_of_ground_truth():
    gen = torch.Generator().manual_seed(0)
    scores, masks = torch.randn(20, 5, generator=gen), torch.rand(12, 20, generator=gen) < 0.5
    truth = torch.randn(12, 5, generator=gen)
    base = lds(scores, masks, truth)
    for transform in (torch.exp, lambda t: 3 * t ** 3 + 1):
        torch.testing.assert_close(lds(scores, masks, transform(truth)).per_query, base.per_query)


def test_undefined_query_is_dropped_and_counted():
    truth = TRUTH.clone()
    truth[:, 1] = 7.0  # constant ground truth: Spearman undefined
    result = lds(SCORES, MASKS, truth)
    assert math.isnan(result.per_query[1])
    assert result.mean == pytest.approx(0.8)
    assert (result.n_queries, result.n_undefined) == (2, 1)
    all_constant = lds(SCORES, MASKS, torch.ones(4, 2))
    assert math.isnan(all_constant.mean) and all_constant.n_undefined == 2


def test_perfect_and_reversed_predictions():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(30, 4, generator=gen)
    assert torch.allclose(spearman_columns(pred, 2 * pred + 5), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(spearman_columns(pred, -pred), -torch.ones(4, dtype=torch.float64))
    # through lds: ground truth equal to the subset sums themselves
    scores, masks = torch.randn(10, 3, generator=gen), torch.rand(8, 10, generator=gen) < 0.5
    yhat = masks.double() @ scores.double()
    assert lds(scores, masks, yhat).mean == pytest.approx(1.0)
    assert lds(scores, masks, -yhat).mean == pytest.approx(-1.0)


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(GrassError, match=r"\(4, 2\)"):
        lds(SCORES, MASKS[:, :2], TRUTH)
    with pytest.raises(GrassError, match="ground_truth"):
        lds(SCORES, MASKS, TRUTH[:3])
    with pytest.raises(GrassError):
        spearman_columns(torch.zeros(3, 2), torch.zeros(3, 3))


def test_bootstrap_ci_contains_mean_is_deterministic_and_narrows():
    gen = torch.Generator().manual_seed(2)
    small = torch.rand(20, generator=gen, dtype=torch.float64)
    large = torch.rand(2000, generator=gen, dtype=torch.float64)
    with_nan = torch.cat([small, torch.tensor([math.nan])])
    low, high = bootstrap_ci(with_nan, n_boot=500, seed=3)
    assert low < float(small.mean()) < high
    assert bootstrap_ci(with_nan, n_boot=500, seed=3) == (low, high)
    assert bootstrap_ci(with_nan, n_boot=500, seed=4) != (low, high)
    low_l, high_l = bootstrap_ci(large, n_boot=500, seed=3)
    assert high_l - low_l < (high - low) / 3
    assert all(math.isnan(v) for v in bootstrap_ci(torch.tensor([math.nan])))
    with pytest.raises(GrassError):
        bootstrap_ci(small, level=1.5)
