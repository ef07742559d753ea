"""JL quality, linearity, seed determinism and fingerprints of every compressor (SPEC 3, 7)."""

from __future__ import annotations

import math

import pytest
import torch

from grass.compress.dense import Gaussian, Rademacher
from grass.compress.fjlt import FJLT
from grass.compress.grass_compressor import GraSS
from grass.compress.identity import Identity
from grass.compress.mask import RandomMask
from grass.compress.sjlt import SJLT

D, K, TRIALS = 3000, 256, 200
EPS = 4 / math.sqrt(K)  # 0.25: about 2.8 standard deviations of a Gaussian JL map's norm error at k=256
BUDGET = 0.05  # at most 5 % of trials may exceed EPS
MEAN_TOL = 0.05  # mean squared-norm ratio within 5 % of 1 (catches a wrong scale)

BUILDERS = {
    "identity": lambda d, k, s: Identity(d, k, s),
    "gaussian": lambda d, k, s: Gaussian(d, k, s),
    "rademacher": lambda d, k, s: Rademacher(d, k, s),
    "fjlt": lambda d, k, s: FJLT(d, k, s),
    "sjlt": lambda d, k, s: SJLT(d, k, s),
    "sjlt_c4": lambda d, k, s: SJLT(d, k, s, c=4),
    "random_mask": lambda d, k, s: RandomMask(d, k, s),
    "grass": lambda d, k, s: GraSS(d, k, s),
}
# Masks only preserve geometry of incoherent (dense Gaussian) vectors, after rescaling by d / |I|.
MASKED = {"random_mask", "grass"}


def _rescale(comp) -> float:
    if isinstance(comp, GraSS):
        return comp.in_dim / comp.k_prime
    if isinstance(comp, RandomMask):
        return comp.in_dim / comp.out_dim
    return 1.0


def _pair(g: torch.Generator, sparse: bool) -> torch.Tensor:
    """Two correlated rows [2, D] (cosine about 0.6); sparse rows keep 5 % of coordinates (coherent inputs)."""
    x, z = torch.randn(2, D, generator=g, dtype=torch.float64)
    pair = torch.stack([x, 0.6 * x + 0.8 * z])
    if sparse:
        pair = pair * (torch.rand(D, generator=g, dtype=torch.float64) < 0.05)
    return pair


def _trials(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per trial (new seed, new vectors): squared-norm ratio |Cx|^2/|x|^2 and |<Cx,Cy>-<x,y>|/(|x||y|)."""
    g = torch.Generator().manual_seed(1234)
    ratios, ip_errs = [], []
    for t in range(TRIALS):
        comp = BUILDERS[name](D, K, t)
        pair = _pair(g, sparse=name not in MASKED and t % 2 == 1)
        out = comp(pair.float()).double() * math.sqrt(_rescale(comp))
        ratios.append(out[0].square().sum() / pair[0].square().sum())
        exact = pair[0] @ pair[1]
        ip_errs.append((out[0] @ out[1] - exact).abs() / (pair[0].norm() * pair[1].norm()))
    return torch.stack(ratios), torch.stack(ip_errs)


def _jl_ok(ratios: torch.Tensor, ip_errs: torch.Tensor) -> tuple[bool, str]:
    norm_fail = ((ratios - 1).abs() > EPS).double().mean().item()
    ip_fail = (ip_errs > EPS).double().mean().item()
    mean = ratios.mean().item()
    ok = norm_fail <= BUDGET and ip_fail <= BUDGET and abs(mean - 1) <= MEAN_TOL
    return ok, f"norm failures {norm_fail:.3f}, inner-product failures {ip_fail:.3f}, mean ratio {mean:.4f}"


@pytest.fixture(scope="module")
def trials():
    cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = _trials(name)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(BUILDERS))
def test_jl_property(name, trials):
    """Over 200 seeded trials (d=3000, k=256): relative squared-norm error |  |Cx|^2/|x|^2 - 1 | and
    inner-product error |<Cx,Cy> - <x,y>| / (|x||y|) exceed eps = 4/sqrt(k) = 0.25 in at most 5 % of
    trials, and the mean squared-norm ratio is within 5 % of 1. Masks (random_mask, grass) are checked
    on dense Gaussian vectors after rescaling by d/|I|; the other maps also on 5 %-sparse vectors."""
    ok, summary = _jl_ok(*trials(name))
    assert ok, f"{name}: {summary}"


@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_jl_check_rejects_wrong_scale(scale, trials):
    """The same check fails for a Gaussian map whose scale is off by 10 %, so the JL test has teeth."""
    ratios, _ = trials("gaussian")
    ok, summary = _jl_ok(ratios * scale**2, torch.zeros_like(ratios))
    assert not ok, f"a map scaled by {scale} passed: {summary}"


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("sparse", [False, True])
def test_linearity(name, sparse):
    """C(a x + b y) = a C(x) + b C(y) (both SJLT paths: dense and 90 %-sparse inputs)."""
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(2, 4, 300, generator=g)
    if sparse:
        x = x * (torch.rand(4, 300, generator=g) < 0.1)
        y = y * (torch.rand(4, 300, generator=g) < 0.1)
    comp = BUILDERS[name](300, 64, 5)
    a, b = 2.5, -0.7
    torch.testing.assert_close(comp(a * x + b * y), a * comp(x) + b * comp(y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_seed_determinism(name):
    """Same seed -> identical bits (fresh objects); a different seed -> a different map (not identity)."""
    x = torch.randn(3, 300, generator=torch.Generator().manual_seed(0))
    first = BUILDERS[name](300, 64, 11)(x)
    again = BUILDERS[name](300, 64, 11)(x)
    assert first.dtype == torch.float32
    assert torch.equal(first, again)
    other = BUILDERS[name](300, 64, 12)(x)
    if name == "identity":
        assert torch.equal(first, other)
    else:
        assert not torch.equal(first, other)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_empty_batch(name):
    comp = BUILDERS[name](300, 64, 0)
    assert comp(torch.zeros(0, 300)).shape == (0, comp.out_dim)


def test_fingerprints():
    base = {"in_dim": 300, "out_dim": 64, "seed": 3}
    assert Identity(300, 64, 3).fingerprint() == {"class": "Identity", **base, "out_dim": 300}
    assert Gaussian(300, 64, 3).fingerprint() == {"class": "Gaussian", **base}
    assert Rademacher(300, 64, 3).fingerprint() == {"class": "Rademacher", **base}
    assert FJLT(300, 64, 3).fingerprint() == {"class": "FJLT", **base, "padded_dim": 512}
    assert SJLT(300, 64, 3, c=4).fingerprint() == {"class": "SJLT", **base, "c": 4}
    mask = RandomMask(300, 64, 3).fingerprint()
    assert mask["class"] == "RandomMask" and len(mask["indices_digest"]) == 16
    assert mask == RandomMask(300, 64, 3).fingerprint()
    assert mask["indices_digest"] != RandomMask(300, 64, 4).fingerprint()["indices_digest"]
    grass = GraSS(3000, 64, 3, blowup=2, c=2).fingerprint()
    assert {k: grass[k] for k in ("class", "blowup", "c", "k_prime")} == {
        "class": "GraSS", "blowup": 2, "c": 2, "k_prime": 128,
    }
    assert "mask_indices_digest" in grass
