"""Compressors built on a learned selective mask (SPEC 3, 4): `selective_mask` and GraSS with it (`grass_sm`).

The mask is read from `<mask_dir>/<k>/<layer>.pt` (grass.selective.artifact), where k is the mask's own
size: out_dim for SelectiveMask, k' (sparse_dim, or min(blowup * out_dim, in_dim)) for GraSSSelective. A missing or
mismatched file is an error that says to run `stage=selective_mask`; there is no random fallback.
`expected_fingerprint` (grass.selective.artifact.mask_fingerprint of the run) is required: the pipeline
adds it to the compressor node, because it depends on the trained models' artifact key.
"""

from __future__ import annotations

import inspect
from typing import Mapping

import torch

from grass.compress.grass_compressor import GraSS, first_stage_size
from grass.compress.mask import IndexMask, check_mask_size
from grass.errors import GrassError
from grass.instantiate import plain_node
from grass.selective.artifact import FLAT, load_mask, mask_path


def _load(in_dim: int, k: int, mask_dir, layer: str, side, expected_fingerprint,
          pair=None) -> tuple[torch.Tensor, str]:
    if not mask_dir:
        raise GrassError("selective mask compressor: mask_dir is not set (conf/compressor/selective_mask.yaml "
                         "sets it from paths.artifacts)")
    check_mask_size(int(k), int(in_dim), "selective mask")
    if side is not None and pair is None:
        raise GrassError(f"selective mask for side {side!r} of layer '{layer}': the (k_in, k_out) pair its sides were "
                         "learned with is needed (grass.compress.factorized passes it)")
    path = mask_path(mask_dir, int(k) if side is None else tuple(pair), layer, side)
    return load_mask(path, expected_fingerprint, int(in_dim), int(k)), str(path)


class SelectiveMask(IndexMask):
    """x [B, d] -> x[:, I] [B, k] float32, I = the k indices learned by stage=selective_mask (scale 1).

    As a side of a factorized compressor (fact_sm, factgrass_sm) it reads the mask of one layer and side,
    learned jointly with the other side: layer, side ("in" | "out") and pair (k_in, k_out) are passed by
    grass.compress.factorized, which checks `per_layer_mask`.
    """

    per_layer_mask = True

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0, mask_dir: str | None = None, layer: str = FLAT,
                 side: str | None = None, expected_fingerprint: Mapping | None = None, pair=None) -> None:
        indices, self.mask_file = _load(in_dim, out_dim, mask_dir, layer, side, expected_fingerprint, pair)
        super().__init__(in_dim, indices, seed)

    @classmethod
    def mask_size(cls, in_dim: int, out_dim: int, **knobs) -> int:
        """How many indices the mask file must hold for this (in_dim, out_dim)."""
        return int(out_dim)


class GraSSSelective(GraSS):
    """x [B, d] -> SJLT(x[:, I]) [B, k], I the learned mask of size k' (SPEC 3 `grass`): sparse_dim, or
    min(blowup * k, d) when sparse_dim is None. Masks of each k' live in their own `<mask_dir>/<k'>/` folder.

    grass_knobs (blowup, c, sparse_dim, ...) go to GraSS unchanged.
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0, mask_dir: str | None = None, layer: str = FLAT,
                 side: str | None = None, expected_fingerprint: Mapping | None = None, **grass_knobs) -> None:
        # GraSS.__init__ calls _make_mask, so the artifact location must be known before it runs.
        self._mask_source = (mask_dir, layer, side, expected_fingerprint)
        super().__init__(in_dim, out_dim, seed=seed, **grass_knobs)

    def _make_mask(self, k_prime: int) -> IndexMask:
        mask_dir, layer, side, expected = self._mask_source
        indices, self.mask_file = _load(self.in_dim, k_prime, mask_dir, layer, side, expected)
        return IndexMask(self.in_dim, indices, seed=self.seed)

    @classmethod
    def mask_size(cls, in_dim: int, out_dim: int, **knobs) -> int:
        defaults = inspect.signature(GraSS).parameters
        blowup = knobs.get("blowup", defaults["blowup"].default)
        return first_stage_size(int(in_dim), int(out_dim), blowup, knobs.get("sparse_dim"))


def required_mask_size(node, in_dim: int, out_dim: int) -> int:
    """The k of the mask file a selective compressor config needs (the `<k>` folder to learn into).

    node: a compressor config (conf/compressor/selective_mask.yaml or grass_sm.yaml).
    """
    from hydra.utils import get_class

    spec = plain_node(node)
    target = spec.get("_target_")
    cls = get_class(target) if isinstance(target, str) else None
    if cls is None or not issubclass(cls, (SelectiveMask, GraSSSelective)):
        raise GrassError(f"compressor {spec.get('name', target)!r} does not use a learned mask; "
                         "stage=selective_mask needs compressor=selective_mask or compressor=grass_sm")
    return cls.mask_size(in_dim, out_dim, **{k: v for k, v in spec.items() if not k.startswith("_")})
