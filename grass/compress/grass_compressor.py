"""GraSS (SPEC 3): sparsify then sparse-project, sjlt_{k' -> k}(mask_{d -> k'}(x)), k' = blowup * k."""

from __future__ import annotations

import logging

import torch

from grass.compress.base import Compressor
from grass.compress.mask import IndexMask, RandomMask
from grass.compress.sjlt import SJLT
from grass.errors import GrassError
from grass.seeding import derive_seed

log = logging.getLogger(__name__)


class GraSS(Compressor):
    """x [B, d] -> SJLT(x[:, I]) [B, k] float32, |I| = k' = min(blowup * k, d).

    The mask is built by `_make_mask`, so a selective-mask variant only overrides that method.
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0, blowup: int = 4, c: int = 1,
                 backend: str = "auto") -> None:
        super().__init__(in_dim, out_dim, seed)
        if isinstance(blowup, bool) or not hasattr(blowup, "__index__") or int(blowup) < 1:
            raise GrassError(f"GraSS: blowup must be an integer >= 1, got {blowup!r}")
        self.blowup = blowup = int(blowup)
        k_prime = blowup * self.out_dim
        if k_prime > self.in_dim:
            log.info("GraSS: mask size blowup*k=%d exceeds in_dim=%d; clamped to %d", k_prime, self.in_dim, self.in_dim)
            k_prime = self.in_dim
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

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        return self.sjlt(self.mask(x))
