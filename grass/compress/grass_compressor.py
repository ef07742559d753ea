"""GraSS (SPEC 3): sparsify then sparse-project, sjlt_{k' -> k}(mask_{d -> k'}(x)).

The first-stage size k' is `sparse_dim` when given (the paper's two-stage ablation fixes k' in {32768, 131072,
524288} and varies k), else blowup * k clamped to d.
"""

from __future__ import annotations

import logging

import torch

from grass.compress.base import Compressor
from grass.compress.mask import IndexMask, RandomMask
from grass.compress.sjlt import SJLT
from grass.errors import GrassError
from grass.kernels.dispatch import sjlt_project
from grass.seeding import derive_seed

log = logging.getLogger(__name__)


def _is_int(value) -> bool:
    return not isinstance(value, bool) and hasattr(value, "__index__")


def first_stage_size(in_dim: int, out_dim: int, blowup: int = 4, sparse_dim: int | None = None) -> int:
    """k', the width after the mask: sparse_dim when set (out_dim < sparse_dim <= in_dim, else GrassError),
    else min(blowup * out_dim, in_dim) (blowup an integer >= 1)."""
    if not _is_int(blowup) or int(blowup) < 1:
        raise GrassError(f"GraSS: blowup must be an integer >= 1, got {blowup!r}")
    if sparse_dim is None:
        k_prime = int(blowup) * int(out_dim)
        if k_prime > in_dim:
            log.info("GraSS: mask size blowup*k=%d exceeds in_dim=%d; clamped to %d", k_prime, in_dim, in_dim)
        return min(k_prime, int(in_dim))
    if not _is_int(sparse_dim) or not int(out_dim) < int(sparse_dim) <= int(in_dim):
        raise GrassError(f"GraSS: compressor.sparse_dim (the first-stage size k') must be an integer with "
                         f"proj_dim={out_dim} < k' <= {in_dim} (the gradient's width), got {sparse_dim!r}; "
                         "sparse_dim=null uses blowup * proj_dim")
    return int(sparse_dim)


class GraSS(Compressor):
    """x [B, d] -> SJLT(x[:, I]) [B, k] float32, |I| = k' = sparse_dim, or min(blowup * k, d) when it is None.

    The mask is built by `_make_mask`, so a selective-mask variant only overrides that method.
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0, blowup: int = 4, c: int = 1,
                 backend: str = "auto", sparse_dim: int | None = None) -> None:
        super().__init__(in_dim, out_dim, seed)
        k_prime = first_stage_size(self.in_dim, self.out_dim, blowup, sparse_dim)
        self.blowup = int(blowup)
        self.k_prime = k_prime
        self.mask = self._make_mask(k_prime)
        self.sjlt = SJLT(k_prime, self.out_dim, seed=derive_seed(self.seed, "sjlt"), c=c, backend=backend)
        self.c = self.sjlt.c

    @property
    def backend_used(self) -> str | None:
        """The SJLT path ("torch" | "cpp" | "triton") of the last call; not part of the fingerprint."""
        return self.sjlt.backend_used

    def _make_mask(self, k_prime: int) -> IndexMask:
        """The d -> k' sparsifying mask; seeded from derive_seed(seed, "mask")."""
        return RandomMask(self.in_dim, k_prime, seed=derive_seed(self.seed, "mask"))

    def _extra_fingerprint(self) -> dict:
        fp = {"blowup": self.blowup, "c": self.c, "k_prime": self.k_prime}
        fp["mask_indices_digest"] = self.mask.fingerprint()["indices_digest"]  # pins a learned mask too
        return fp

    def matrix(self) -> torch.Tensor:
        """The explicit map M [d, k] float32 with C(x) = x @ M."""
        return self.mask.matrix() @ self.sjlt.matrix()

    def unfused(self, x: torch.Tensor) -> torch.Tensor:
        """The two stages one after the other, sjlt(mask(x)): the reference the fused path is tested against."""
        return self.sjlt(self.mask(x))

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        # one pass over the k' selected columns (the C++ kernel fuses mask + SJLT; other paths gather first)
        out, self.sjlt.backend_used = sjlt_project(x, *self.sjlt.tables(x.device), self.out_dim,
                                                   backend=self.sjlt.backend, cols=self.mask.indices_on(x.device))
        return out
