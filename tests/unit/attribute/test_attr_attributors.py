"""Attributors with the identity compressor == dense computations written out from SPEC 1.1 / 1.2."""

import pytest
import torch
from torch import nn

from grass.attribute.attributors import GradDotAttributor, InfluenceAttributor, TRAKAttributor
from grass.compress.identity import Identity
from grass.errors import GrassError


def _per_example_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[N, p] float64 loss gradients, one example at a time with plain autograd."""
    rows = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        nn.functional.cross_entropy(model(xi[None]), yi[None]).backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    return torch.stack(rows).double()


def _identity_features(grads: torch.Tensor) -> torch.Tensor:
    return Identity(grads.shape[1])(grads)


def _checkpoint(seed: int, n: int, m: int, d: int, k: int):
    """(train grads [n, k], query grads [m, k], Q [n]) for a random tiny softmax model; k = d*3 + 3 params."""
    torch.manual_seed(seed)
    model = nn.Linear(d, 3).double()
    x, y = torch.randn(n + m, d, dtype=torch.float64), torch.randint(0, 3, (n + m,))
    grads = _per_example_grads(model, x, y)
    assert grads.shape[1] == k
    with torch.no_grad():
        p_true = model(x[:n]).softmax(-1).gather(1, y[:n, None]).squeeze(1)
    return grads[:n], grads[n:], 1.0 - p_true


@pytest.mark.parametrize("n", [30, 9])  # p = 15: feature-side (k <= n) and example-side (k > n) solves
def test_trak_two_checkpoints_matches_dense_formula(n):
    m, p, lam = 6, 15, 0.03
    ckpts = [_checkpoint(seed, n, m, d=4, k=p) for seed in (0, 1)]
    attributor = TRAKAttributor()
    for train, query, weight in ckpts:
        attributor.add_checkpoint(_identity_features(train), _identity_features(query),
                                  train_weight=weight, num_params=p)
    assert attributor.checkpoints == 2

    # SPEC 1.2 written out: Phi_c = g / sqrt(p), K_c = Phi_c^T Phi_c + lam I, explicit inverse per checkpoint
    kernels = []
    for train, query, _ in ckpts:
        phi, phi_z = train / p ** 0.5, query / p ** 0.5
        k_inv = torch.linalg.inv(phi.T @ phi + lam * torch.eye(p, dtype=torch.float64))
        kernels.append((phi_z @ k_inv @ phi.T).T)  # [n, m]
    mean_q = torch.stack([w for _, _, w in ckpts]).mean(0)
    want = torch.stack(kernels).mean(0) * mean_q[:, None]

    got = attributor.scores(lam)
    assert got.dtype == torch.float32 and got.shape == (n, m)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    idx = torch.tensor([4, 0, 2])
    torch.testing.assert_close(attributor.scores(lam, idx), got[:, idx])


@pytest.mark.parametrize("n", [30, 9])
def test_influence_matches_dense_efim_with_relative_damping(n):
    m, p, lam = 5, 15, 0.1
    ckpts = [_checkpoint(seed, n, m, d=4, k=p) for seed in (2, 3)]
    attributor = InfluenceAttributor()
    for train, query, _ in ckpts:
        attributor.add_checkpoint(_identity_features(train), _identity_features(query))

    wants = []
    for train, query, _ in ckpts:
        fisher = train.T @ train / n  # F = (1/n) sum_i g_i g_i^T
        lam_eff = lam * torch.trace(fisher) / p  # relative damping
        psi = torch.linalg.solve(fisher + lam_eff * torch.eye(p, dtype=torch.float64), train.T).T  # iFVP [n, p]
        wants.append(psi @ query.T)  # tau(i, z) = <psi_i, phi_z>
    want = torch.stack(wants).mean(0)
    got = attributor.scores(lam)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_grad_dot_is_mean_inner_product():
    gen = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(8, 5, generator=gen), torch.randn(3, 5, generator=gen)) for _ in range(2)]
    attributor = GradDotAttributor()
    for train, query in pairs:
        attributor.add_checkpoint(_identity_features(train), _identity_features(query))
    want = sum(train @ query.T for train, query in pairs) / 2
    torch.testing.assert_close(attributor.scores(None), want)
    torch.testing.assert_close(attributor.scores(None, torch.tensor([2])), want[:, [2]])
    assert GradDotAttributor.damping_kind == "none"


def test_damping_kinds_and_no_argument_constructors():
    assert TRAKAttributor().damping_kind == "absolute"
    assert InfluenceAttributor().damping_kind == "relative"
    assert InfluenceAttributor().checkpoints == 0


def test_attributors_reject_bad_input():
    train, query = torch.randn(6, 4), torch.randn(2, 4)
    with pytest.raises(GrassError, match="num_params"):
        TRAKAttributor().add_checkpoint(train, query, train_weight=torch.ones(6))
    with pytest.raises(GrassError, match="train_weight"):
        TRAKAttributor().add_checkpoint(train, query, num_params=4)
    with pytest.raises(GrassError, match="compressed dimension"):
        InfluenceAttributor().add_checkpoint(train, torch.randn(2, 3))
    with pytest.raises(GrassError, match="no checkpoint"):
        InfluenceAttributor().scores(0.1)
    influence = InfluenceAttributor()
    influence.add_checkpoint(train, query)
    with pytest.raises(GrassError, match="earlier checkpoints"):
        influence.add_checkpoint(torch.randn(5, 4), query)
    with pytest.raises(GrassError, match="damping > 0"):
        influence.scores(None)
    with pytest.raises(GrassError, match="query_idx"):
        influence.scores(0.1, torch.tensor([2]))
    with pytest.raises(GrassError, match="all zero"):
        InfluenceAttributor().add_checkpoint(torch.zeros(6, 4), query)
