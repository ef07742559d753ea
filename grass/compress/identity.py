"""The identity compressor (SPEC 3): exact gradients, used as the uncompressed reference."""

from __future__ import annotations

import logging

import torch

from grass.compress.base import Compressor

log = logging.getLogger(__name__)


class Identity(Compressor):
    """x [B, d] -> x [B, d] as float32; out_dim is always in_dim.

    The factory passes proj_dim as out_dim for every method; it is meaningless here, so it is
    ignored (and logged when it differs) instead of being an error.
    """

    def __init__(self, in_dim: int, out_dim: int | None = None, seed: int = 0) -> None:
        if out_dim is not None and int(out_dim) != int(in_dim):
            log.info("identity compressor ignores proj_dim=%s and keeps in_dim=%s", out_dim, in_dim)
        super().__init__(in_dim, in_dim, seed)

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        # copy=True: callers may write into the result without touching the gradients it came from.
        return x.to(dtype=torch.float32, copy=True)
