"""compress.factorized: stage 1 == (P_out kron P_in) vec(G), padding, clamping, seeds, configs (SPEC 3.3)."""

import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from grass.compress.base import Compressor
from grass.compress.dense import Gaussian
from grass.compress.factorized import FactorizedCompressor, build_factorized, is_factorized, side_width
from grass.compress.identity import Identity
from grass.compress.sjlt import SJLT
from grass.errors import GrassError

CONF = Path(__file__).resolve().parents[3] / "conf" / "compressor"
METHODS = ("logra", "factgrass", "fact_sjlt", "fact_mask")


def _build(method: str, in_dim: int, out_dim: int, k: int, seed: int = 0, layer: str = "blk.fc", **overrides):
    node = OmegaConf.merge(OmegaConf.load(CONF / f"{method}.yaml"), overrides)
    return build_factorized(node, in_dim=in_dim, out_dim=out_dim, proj_dim=k, seed=seed, layer_name=layer)


def _factors(b=3, t=5, i=13, o=11, seed=0):
    """a [B, T, I'], delta [B, T, O] with a ones bias column, like a hooked layer gives."""
    g = torch.Generator().manual_seed(seed)
    a = torch.cat([torch.randn(b, t, i - 1, generator=g), torch.ones(b, t, 1)], dim=2)
    return a, torch.randn(b, t, o, generator=g)


def _matrix(c: Compressor) -> torch.Tensor:
    """The explicit map M [d, k] of any compressor, C(x) = x @ M, by compressing the identity."""
    return c(torch.eye(c.in_dim))


def _kron_reference(fc: FactorizedCompressor, a, delta, with_stage2: bool) -> torch.Tensor:
    """Materialise vec(G_b) [B, O * I'] and apply (P_out kron P_in) (then stage 2) as explicit matrices."""
    g = torch.einsum("bto,bti->boi", delta, a).reshape(a.shape[0], -1)  # output-index-major
    out = g @ torch.kron(_matrix(fc.out_side), _matrix(fc.in_side))  # = (P_out kron P_in) vec(G)
    return out @ _matrix(fc.stage2) if with_stage2 and fc.stage2 is not None else out


@pytest.mark.parametrize("method", METHODS)
def test_stage1_is_the_kronecker_map_on_the_materialised_gradient(method):
    a, delta = _factors()
    fc = _build(method, in_dim=13, out_dim=11, k=9)  # factgrass: sides 128 clamped to 13 x 11, SJLT 143 -> 9
    assert (fc.k_in, fc.k_out) == ((13, 11) if method == "factgrass" else (3, 3))
    torch.testing.assert_close(fc.stage1(a, delta), _kron_reference(fc, a, delta, False), atol=1e-5, rtol=1e-4)
    got = fc(a, delta)
    assert got.shape == (3, 9) and got.dtype == torch.float32
    torch.testing.assert_close(got, _kron_reference(fc, a, delta, True), atol=1e-5, rtol=1e-4)


def test_identity_sides_give_the_exact_gradient():
    a, delta = _factors(i=7, o=4)
    fc = FactorizedCompressor(Identity(7), Identity(4), layer_name="x")
    assert fc.feature_dim == 28
    exact = torch.stack([sum(torch.outer(delta[b, t], a[b, t]) for t in range(5)).reshape(-1) for b in range(3)])
    torch.testing.assert_close(fc(a, delta), exact, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_padding_tokens_contribute_nothing(method):
    a, delta = _factors(t=6)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[0, 4:] = 0
    mask[2, 1:] = 0
    fc = _build(method, 13, 11, 9)
    got = fc(a, delta, mask)
    for b in range(3):
        n = int(mask[b].sum())
        torch.testing.assert_close(got[b:b + 1], fc(a[b:b + 1, :n], delta[b:b + 1, :n]), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, fc(a, delta))  # the mask did change something


def test_sides_are_clamped_to_the_layer_width_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="grass.compress.factorized"):
        fc = _build("fact_mask", in_dim=5, out_dim=300, k=64)  # side 8 > I' = 5
    assert (fc.k_in, fc.k_out, fc.feature_dim) == (5, 8, 40)
    assert "clamped to the layer width 5" in caplog.text
    a, delta = _factors(i=5, o=300)
    assert fc(a, delta).shape == (3, 40)


def test_stage2_is_skipped_when_clamping_leaves_at_most_k(caplog):
    with caplog.at_level(logging.INFO, logger="grass.compress.factorized"):
        fc = _build("factgrass", in_dim=65, out_dim=3, k=64, side_dim=None, blowup=4)  # 16 x 3 = 48 <= 64
    assert fc.stage2 is None and fc.feature_dim == 48
    assert "stage 2 skipped" in caplog.text
    big = _build("factgrass", in_dim=65, out_dim=10, k=64, side_dim=None, blowup=4)  # 16 x 10 = 160 > 64
    assert isinstance(big.stage2, SJLT) and big.feature_dim == 64


def test_factgrass_keeps_128_sides_at_every_k_like_table_2():
    for k in (256, 1024, 4096):
        fc = _build("factgrass", in_dim=769, out_dim=3072, k=k)
        assert (fc.k_in, fc.k_out, fc.feature_dim) == (128, 128, k) and fc.stage2.in_dim == 128 * 128
    spec = _build("factgrass", in_dim=769, out_dim=3072, k=256, side_dim=None, blowup=4)  # SPEC 3.3's formula
    assert (spec.k_in, spec.k_out) == (32, 32)
    with pytest.raises(GrassError, match="not both"):
        _build("factgrass", in_dim=769, out_dim=3072, k=256, blowup=4)
    with pytest.raises(GrassError, match="needs a stage 2"):
        _build("fact_mask", in_dim=769, out_dim=3072, k=256, side_dim=64)


def test_same_seed_and_layer_give_the_same_map_other_layers_and_sides_differ():
    a, delta = _factors(i=40, o=40)
    one, two = _build("logra", 40, 40, 16, seed=3, layer="h.0.fc"), _build("logra", 40, 40, 16, seed=3, layer="h.0.fc")
    assert torch.equal(one(a, delta), two(a, delta))
    assert one.fingerprint() == two.fingerprint()
    other_layer = _build("logra", 40, 40, 16, seed=3, layer="h.1.fc")
    other_seed = _build("logra", 40, 40, 16, seed=4, layer="h.0.fc")
    for other in (other_layer, other_seed):
        assert not torch.allclose(one(a, delta), other(a, delta))
        assert one.fingerprint() != other.fingerprint()
    assert not torch.equal(_matrix(one.in_side), _matrix(one.out_side))  # "in" and "out" seeds differ


@pytest.mark.parametrize("method", METHODS)
def test_every_method_builds_from_its_yaml(method):
    node = OmegaConf.load(CONF / f"{method}.yaml")
    assert node.name == method and is_factorized(node)
    fc = _build(method, in_dim=769, out_dim=3072, k=4096)
    side = 128 if method == "factgrass" else 64
    assert (fc.k_in, fc.k_out, fc.feature_dim) == (side, side, 4096)
    assert (fc.stage2 is not None) == (method == "factgrass")
    assert "kind" in node  # the caller's node is not modified
    if method == "logra":
        assert isinstance(fc.in_side, Gaussian)


def test_flat_nodes_are_not_factorized():
    sjlt = OmegaConf.load(CONF / "sjlt.yaml")
    assert not is_factorized(sjlt)
    with pytest.raises(GrassError, match="not marked `kind: factorized`"):
        build_factorized(sjlt, 10, 10, 4, 0, "x")


@pytest.mark.parametrize("k,blowup,fragment", [(4095, 1, "use proj_dim=3969 or 4096"),
                                                (50, 4, "use proj_dim=49 or 64"),
                                                (4096, 2, "use proj_dim=4050 or 4232")])
def test_non_square_k_is_refused_with_a_suggestion(k, blowup, fragment):
    with pytest.raises(GrassError, match=fragment):
        side_width(k, blowup)
    assert side_width(4096, 4) == 128 and side_width(4096, 1) == 64


def test_bad_arguments_and_shapes_are_refused():
    with pytest.raises(GrassError, match="to be a perfect square"):
        _build("logra", 10, 10, 10)
    with pytest.raises(GrassError, match="blowup=4 .*needs a stage 2"):
        build_factorized({"kind": "factorized", "_target_": "grass.compress.factorized.factorized",
                          "side": {"_target_": "grass.compress.mask.RandomMask"}, "blowup": 4}, 10, 10, 4, 0, "x")
    fc = _build("fact_mask", 13, 11, 9)
    a, delta = _factors()
    with pytest.raises(GrassError, match=r"inputs must be \[B, T, 13\]"):
        fc(a[..., :12], delta)
    with pytest.raises(GrassError, match="output gradients must be"):
        fc(a, delta[:, :4])
    with pytest.raises(GrassError, match="token_mask must be"):
        fc(a, delta, torch.ones(3, 4))
    with pytest.raises(GrassError, match="stage 2 expects"):
        FactorizedCompressor(Identity(3), Identity(4), SJLT(10, 2))


@pytest.mark.parametrize("method", METHODS)
def test_a_side_keeping_the_whole_layer_width_is_the_identity(method, caplog):
    """I' = 6 and O = 4 are narrower than every side (8 = sqrt(64), or factgrass's 128): both sides are exact,
    and stage 2 (factgrass) is skipped since 4 * 6 <= K; each identity side is logged."""
    with caplog.at_level(logging.INFO, logger="grass.compress.factorized"):
        fc = _build(method, in_dim=6, out_dim=4, k=64, layer="blk.fc")
    assert isinstance(fc.in_side, Identity) and isinstance(fc.out_side, Identity) and fc.stage2 is None
    assert (fc.k_in, fc.k_out, fc.feature_dim) == (6, 4, 24)
    for side, width in (("input", 6), ("output", 4)):
        assert f"layer 'blk.fc': {side} side keeps the whole layer width {width}: identity" in caplog.text
    a, delta = _factors(i=6, o=4)
    torch.testing.assert_close(fc(a, delta), torch.einsum("bto,bti->boi", delta, a).reshape(3, 24))


def test_a_side_of_exactly_the_layer_width_is_the_identity_the_other_stays_random():
    fc = _build("logra", in_dim=8, out_dim=300, k=64)  # side 8 = I' (no clamping needed), 8 < O
    assert isinstance(fc.in_side, Identity) and isinstance(fc.out_side, Gaussian)
    assert (fc.k_in, fc.k_out) == (8, 8)
