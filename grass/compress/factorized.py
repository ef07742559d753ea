"""Factorized compressors for one linear layer (SPEC 3.3): LoGra, FactGraSS, fact_sjlt, fact_mask.

A layer's per-example gradient is G_b = sum_t delta_{b,t} a_{b,t}^T, `[O, I']` (I' includes the bias
column). Stage 1 compresses each token's factors with two ordinary Compressors, a~ = P_in a (I' -> k_i)
and delta~ = P_out delta (O -> k_o), and contracts them: G~_b = sum_t delta~_{b,t} a~_{b,t}^T, flattened
output-index-major to k_o * k_i. That equals (P_out kron P_in) vec(G_b) without ever building G_b.
An optional stage 2 (a Compressor) maps the k_o * k_i vector to K.

Exact where nothing is saved: a side whose width k reaches its factor's width (k >= I' or k >= O, so it is
clamped to that width) keeps every coordinate, and a square random map of a width onto itself (Gaussian,
SJLT) would only distort inner products; such a side is the Identity, whatever `side` is (a mask keeping
every coordinate is the identity already, so a learned one needs no file there). Likewise stage 2 exists
only when it shrinks: with k_o * k_i <= K it is skipped and the stage-1 features are kept, so a layer
narrower than its sides gives its exact per-example gradient vec(G_b) [O * I'].

The four methods are one builder, `factorized`, fed different Compressor partials by
conf/compressor/{logra,factgrass,fact_sjlt,fact_mask}.yaml (marked `kind: factorized`). The pipeline
builds one FactorizedCompressor per layer with `build_factorized(node, in_dim=I', out_dim=O,
proj_dim=K, seed=seed, layer_name=name)`.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Callable

import torch

from grass.compress.base import Compressor
from grass.compress.identity import Identity
from grass.errors import GrassError
from grass.instantiate import instantiate_node, plain_node
from grass.seeding import derive_seed

log = logging.getLogger(__name__)

KIND = "factorized"  # the `kind` key that marks a factorized compressor config

CompressorFactory = Callable[..., Compressor]  # (in_dim=, out_dim=, seed=) -> Compressor


class FactorizedCompressor:
    """(a [B, T, I'], delta [B, T, O], token_mask [B, T] | None) -> features [B, feature_dim] float32.

    Attributes: `in_dim` = I', `grad_dim` = O (the layer's output width; deliberately not called
    out_dim, which on a Compressor means the feature width), `k_in`, `k_out` (stage-1 side widths),
    `feature_dim` = K_l (stage-2 width, or k_out * k_in without stage 2).
    """

    def __init__(self, in_side: Compressor, out_side: Compressor, stage2: Compressor | None = None,
                 layer_name: str = "") -> None:
        self.layer_name = str(layer_name)
        self.in_side, self.out_side, self.stage2 = in_side, out_side, stage2
        self.in_dim, self.k_in = in_side.in_dim, in_side.out_dim
        self.grad_dim, self.k_out = out_side.in_dim, out_side.out_dim
        stage1_dim = self.k_out * self.k_in
        if stage2 is not None and stage2.in_dim != stage1_dim:
            raise GrassError(f"factorized compressor for layer '{self.layer_name}': stage 2 expects "
                             f"{stage2.in_dim} inputs but stage 1 gives k_out*k_in = {stage1_dim}")
        self.feature_dim = stage2.out_dim if stage2 is not None else stage1_dim

    def _check(self, a: torch.Tensor, delta: torch.Tensor, token_mask: torch.Tensor | None) -> None:
        where = f"factorized compressor for layer '{self.layer_name}'"
        if a.ndim != 3 or a.shape[2] != self.in_dim:
            raise GrassError(f"{where}: inputs must be [B, T, {self.in_dim}], got {list(a.shape)}")
        if delta.ndim != 3 or delta.shape[2] != self.grad_dim or delta.shape[:2] != a.shape[:2]:
            raise GrassError(f"{where}: output gradients must be [{a.shape[0]}, {a.shape[1]}, "
                             f"{self.grad_dim}], got {list(delta.shape)}")
        if token_mask is not None and token_mask.shape != a.shape[:2]:
            raise GrassError(f"{where}: token_mask must be {list(a.shape[:2])}, got {list(token_mask.shape)}")

    def stage1(self, a: torch.Tensor, delta: torch.Tensor,
               token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """a [B, T, I'], delta [B, T, O] -> vec(P_out G_b P_in^T) [B, k_out * k_in], output-index-major."""
        self._check(a, delta, token_mask)
        batch, tokens = a.shape[:2]
        a_small = self.in_side(a.reshape(batch * tokens, self.in_dim)).view(batch, tokens, self.k_in)
        d_small = self.out_side(delta.reshape(batch * tokens, self.grad_dim)).view(batch, tokens, self.k_out)
        if token_mask is not None and not bool(token_mask.all()):  # unpadded blocks need no multiply
            # zeroing delta~ at padded tokens removes their outer product; P_out is linear, so masking
            # after it equals masking delta, on k_out columns instead of O
            d_small = d_small * token_mask.unsqueeze(-1).to(d_small.dtype)
        # sum over tokens of outer products: [B, k_out, T] @ [B, T, k_in] -> [B, k_out, k_in]
        return torch.bmm(d_small.transpose(1, 2), a_small).reshape(batch, self.k_out * self.k_in)

    def __call__(self, a: torch.Tensor, delta: torch.Tensor,
                 token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """a [B, T, I'], delta [B, T, O], token_mask [B, T] (1 = real token) -> [B, feature_dim] float32."""
        features = self.stage1(a, delta, token_mask)
        return self.stage2(features) if self.stage2 is not None else features

    def fingerprint(self) -> dict:
        """Everything that determines the map: equal fingerprints mean equal outputs."""
        return {
            "class": type(self).__name__, "layer_name": self.layer_name, "in_dim": self.in_dim,
            "grad_dim": self.grad_dim, "k_in": self.k_in, "k_out": self.k_out, "feature_dim": self.feature_dim,
            "in_side": self.in_side.fingerprint(), "out_side": self.out_side.fingerprint(),
            "stage2": self.stage2.fingerprint() if self.stage2 is not None else None,
        }

    def __repr__(self) -> str:
        s2 = f", stage2={self.stage2!r}" if self.stage2 is not None else ""
        return (f"FactorizedCompressor(layer='{self.layer_name}', in={self.in_side!r}, "
                f"out={self.out_side!r}{s2})")


def side_width(proj_dim: int, blowup: int) -> int:
    """The stage-1 side width k with k * k = blowup * K; GrassError (suggesting valid K) otherwise."""
    blowup, proj_dim = int(blowup), int(proj_dim)
    target = blowup * proj_dim
    k = math.isqrt(target)
    if k * k == target:
        return k
    step = next(m for m in range(1, blowup + 1) if (m * m) % blowup == 0)  # side widths come in multiples
    j = k // step
    options = [(step * i) ** 2 // blowup for i in (j, j + 1) if i > 0]
    raise GrassError(
        f"factorized compressors need blowup * proj_dim to be a perfect square (k x k sides), got "
        f"blowup={blowup} x proj_dim={proj_dim} = {target}; use proj_dim={' or '.join(map(str, options))}"
    )


def _clamped(k: int, width: int, layer_name: str, side: str) -> int:
    """min(k, width), logging when the side is clamped (the side is then the identity, see `_side`)."""
    if k > width:
        log.info("layer '%s': %s side %d clamped to the layer width %d", layer_name, side, k, width)
        return width
    return k


def _side(side: CompressorFactory, width: int, k: int, seed: int, layer_name: str, label: str,
          extra: dict) -> Compressor:
    """One stage-1 side [N, width] -> [N, k]: `side` when k < width, else (k >= width) the exact Identity.

    label: "input" | "output" (for the log); extra: the per-layer-mask knobs of a learned side.
    """
    if k < width:
        return side(in_dim=width, out_dim=k, seed=seed, **extra)
    kind = getattr(getattr(side, "func", side), "__name__", repr(side))
    log.info("layer '%s': %s side keeps the whole layer width %d: identity (exact), no %s map",
             layer_name, label, width, kind)
    return Identity(width)


def side_widths(in_dim: int, out_dim: int, proj_dim: int, blowup: int = 1, side_dim: int | None = None,
                layer_name: str = "") -> tuple[int, int]:
    """Stage-1 side widths (k_in, k_out): `side_dim`, or sqrt(blowup * K), each clamped to its layer width."""
    if isinstance(blowup, bool) or not hasattr(blowup, "__index__") or int(blowup) < 1:
        raise GrassError(f"factorized compressor: blowup must be an integer >= 1, got {blowup!r}")
    if side_dim is not None and int(blowup) != 1:
        raise GrassError(f"factorized compressor: set side_dim ({side_dim}) or blowup ({blowup}), not both")
    if side_dim is not None and (isinstance(side_dim, bool) or not hasattr(side_dim, "__index__") or int(side_dim) < 1):
        raise GrassError(f"factorized compressor: side_dim must be a positive integer, got {side_dim!r}")
    if int(proj_dim) <= 0:
        raise GrassError(f"factorized compressor: proj_dim (per-layer K) must be positive, got {proj_dim}")
    k = int(side_dim) if side_dim is not None else side_width(int(proj_dim), int(blowup))
    return _clamped(k, int(in_dim), layer_name, "input"), _clamped(k, int(out_dim), layer_name, "output")


def node_side_widths(node, in_dim: int, out_dim: int, proj_dim: int, layer_name: str = "") -> tuple[int, int]:
    """side_widths for a `kind: factorized` config node (its side_dim / blowup, else `factorized`'s defaults)."""
    spec = plain_node(node)
    defaults = inspect.signature(factorized).parameters
    return side_widths(in_dim, out_dim, proj_dim, blowup=spec.get("blowup", defaults["blowup"].default),
                       side_dim=spec.get("side_dim", defaults["side_dim"].default), layer_name=layer_name)


def factorized(in_dim: int, out_dim: int, proj_dim: int, seed: int, layer_name: str,
               side: CompressorFactory, stage2: CompressorFactory | None = None,
               blowup: int = 1, side_dim: int | None = None) -> FactorizedCompressor:
    """One layer's factorized compressor: sides of width sqrt(blowup * K), or `side_dim` when given (both
    clamped to I' and O), then stage 2. A side that keeps its layer's whole width is the Identity (exact).

    in_dim = I' (layer input width incl. bias column), out_dim = O (layer output width), proj_dim = K
    (per-layer feature width). side_dim fixes the side width for every K, as the paper's Table 2 FactGraSS
    rows do ("RM 128x128 -> SJLT K"); it excludes blowup. Seeds: derive_seed(seed, layer_name, "in" |
    "out" | "stage2"). Stage 2 is skipped (and logged) when the sides already give k_out * k_in <= K.
    """
    if (int(blowup) != 1 or side_dim is not None) and stage2 is None:
        raise GrassError(f"factorized compressor: blowup={blowup} / side_dim={side_dim} needs a stage 2 to "
                         f"bring the sides' product back to K; set stage2, or blowup=1 and side_dim=null")
    k_in, k_out = side_widths(in_dim, out_dim, proj_dim, blowup=blowup, side_dim=side_dim, layer_name=layer_name)
    extra = {}
    if getattr(getattr(side, "func", side), "per_layer_mask", False):  # a learned mask: one file per layer and side
        extra = {"layer": str(layer_name), "pair": (k_in, k_out)}
    in_side = _side(side, int(in_dim), k_in, derive_seed(seed, layer_name, "in"), layer_name, "input",
                    {**extra, "side": "in"} if extra else {})
    out_side = _side(side, int(out_dim), k_out, derive_seed(seed, layer_name, "out"), layer_name, "output",
                     {**extra, "side": "out"} if extra else {})
    stage1_dim = in_side.out_dim * out_side.out_dim  # from the built sides: identity keeps its width
    last = None  # a stage 2 to K >= stage1_dim would be a square or widening random map: skipped
    if stage2 is not None and stage1_dim > int(proj_dim):
        last = stage2(in_dim=stage1_dim, out_dim=int(proj_dim), seed=derive_seed(seed, layer_name, "stage2"))
    elif stage2 is not None:
        log.info("layer '%s': stage 1 gives %d <= K=%d features; stage 2 skipped", layer_name, stage1_dim, proj_dim)
    return FactorizedCompressor(in_side, out_side, last, layer_name=layer_name)


def is_factorized(node) -> bool:
    """Whether a compressor config node is a factorized one (`kind: factorized`)."""
    return plain_node(node).get("kind") == KIND


def build_factorized(node, in_dim: int, out_dim: int, proj_dim: int, seed: int,
                     layer_name: str) -> FactorizedCompressor:
    """Instantiate a `kind: factorized` config node for one layer (I' = in_dim, O = out_dim, K = proj_dim)."""
    spec = plain_node(node)
    label = f"factorized compressor '{spec.get('name', spec.get('_target_'))}'"
    if spec.pop("kind", None) != KIND:
        raise GrassError(f"{label}: config is not marked `kind: {KIND}`; flat compressors are built "
                         f"with grass.compress.factory.build_compressor")
    for key in ("side", "stage2"):  # the nested Compressors get their dims only inside `factorized`
        if isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], "_partial_": True}
    factory = instantiate_node({**spec, "_partial_": True}, label)
    try:
        built = factory(in_dim=int(in_dim), out_dim=int(out_dim), proj_dim=int(proj_dim),
                        seed=int(seed), layer_name=str(layer_name))
    except TypeError as err:
        raise GrassError(f"{label} rejected its arguments: {err}") from None
    if not isinstance(built, FactorizedCompressor):
        raise GrassError(f"{label} built a {type(built).__name__}, not a FactorizedCompressor")
    return built
