"""conf/compressor/*.yaml build through build_compressor (SPEC 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from grass.compress.base import Compressor
from grass.compress.factory import build_compressor, compressor_name
from grass.errors import GrassError

CONF = Path(__file__).resolve().parents[3] / "conf" / "compressor"
EXPECTED = {"identity", "gaussian", "rademacher", "fjlt", "sjlt", "random_mask", "grass"}


def test_every_method_has_a_config():
    assert EXPECTED <= {p.stem for p in CONF.glob("*.yaml")}


@pytest.mark.parametrize("path", sorted(CONF / f"{name}.yaml" for name in EXPECTED), ids=lambda p: p.stem)
def test_config_builds_and_maps(path):
    node = OmegaConf.load(path)
    assert compressor_name(node) == path.stem
    comp = build_compressor(node, in_dim=300, out_dim=64, seed=1)
    assert isinstance(comp, Compressor) and comp.seed == 1
    out = comp(torch.randn(5, 300))
    assert out.shape == (5, 300 if path.stem == "identity" else 64)
    assert out.dtype == torch.float32
    assert "name" in node  # the caller's node is not modified


def test_knobs_reach_the_constructor():
    node = OmegaConf.create({"name": "grass", "_target_": "grass.compress.grass_compressor.GraSS", "blowup": 2, "c": 4})
    comp = build_compressor(node, 1000, 16, 0)
    assert (comp.blowup, comp.c, comp.k_prime) == (2, 4, 32)


def test_interpolations_resolve_against_the_root():
    cfg = OmegaConf.create(
        {"sparsity": 3, "compressor": {"name": "sjlt", "_target_": "grass.compress.sjlt.SJLT", "c": "${sparsity}"}}
    )
    assert build_compressor(cfg.compressor, 100, 8, 0).c == 3


@pytest.mark.parametrize(
    "node,fragment",
    [
        ({"name": "broken"}, r"compressor 'broken': config needs a `_target_`"),
        (
            {"name": "typo", "_target_": "grass.compress.nope.Missing"},
            r"compressor 'typo': cannot build 'grass.compress.nope.Missing'",
        ),
        (
            {"name": "odd", "_target_": "collections.OrderedDict"},
            r"compressor 'odd' built a OrderedDict, not a Compressor",
        ),
        (
            {"name": "sjlt", "_target_": "grass.compress.sjlt.SJLT", "cc": 2},
            r"compressor 'sjlt' rejected its arguments",
        ),
        ({"name": "sjlt", "_target_": "grass.compress.sjlt.SJLT", "c": 17}, r"SJLT: c \(nonzeros"),
    ],
)
def test_bad_nodes(node, fragment):
    with pytest.raises(GrassError, match=fragment):
        build_compressor(OmegaConf.create(node), 300, 64, 1)


def test_compressor_name_fallbacks():
    assert compressor_name({"_target_": "grass.compress.sjlt.SJLT"}) == "sjlt"
    with pytest.raises(GrassError, match="neither `name` nor `_target_`"):
        compressor_name({"c": 1})
