"""Sparse Johnson-Lindenstrauss transform (SPEC 3), pure torch.

For each input coordinate j there are c buckets h_r(j), uniform in [0, k) with replacement, and signs
s_r(j) in {+1, -1}: y[h_r(j)] += s_r(j) x[j] / sqrt(c). Zero entries of x contribute nothing, so a
sparse path that visits only the nonzeros (ReLU-sparse gradients) gives the same answer cheaper.
The work is done by grass.kernels (pure-torch reference, C++ CPU kernel, Triton GPU kernel); `backend`
picks one and `backend_used` says which ran last. All give the same map, so the backend is not part of
the fingerprint.
"""

from __future__ import annotations

import math

import torch

from grass.compress.base import Compressor
from grass.errors import GrassError
from grass.kernels.dispatch import check_backend, sjlt_project
from grass.kernels.sjlt_reference import sjlt_dense, sjlt_sparse
from grass.seeding import generator

MAX_C = 16


class SJLT(Compressor):
    """x [B, d] (fp32 / fp16 / bf16) -> y [B, k] float32, c nonzeros per input coordinate."""

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0, c: int = 1, backend: str = "auto") -> None:
        super().__init__(in_dim, out_dim, seed)
        self.backend = check_backend(backend)
        self.backend_used: str | None = None  # "torch" | "cpp" | "triton" after the first call
        if isinstance(c, bool) or not hasattr(c, "__index__") or not 1 <= int(c) <= MAX_C:
            raise GrassError(f"SJLT: c (nonzeros per input coordinate) must be an integer in 1..{MAX_C}, got {c!r}")
        self.c = c = int(c)
        shape = (c, self.in_dim)
        self.buckets = torch.randint(0, self.out_dim, shape, generator=generator(self.seed, "buckets"))  # [c, d]
        signs = torch.randint(0, 2, shape, generator=generator(self.seed, "signs")).to(torch.float32) * 2 - 1
        self.signs = signs / math.sqrt(c)  # [c, d], the 1/sqrt(c) scale folded in
        self._on: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    def _extra_fingerprint(self) -> dict:
        return {"c": self.c}

    def tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(buckets [c, d] int64, scaled signs [c, d] float32) on `device`, cached for the last device."""
        if self._on is None or self._on[0] != device:
            self._on = (device, self.buckets.to(device), self.signs.to(device))
        return self._on[1], self._on[2]

    def matrix(self) -> torch.Tensor:
        """The explicit map M [d, k] float32 with C(x) = x @ M (repeated buckets add up)."""
        m = torch.zeros(self.in_dim, self.out_dim, dtype=torch.float32)
        rows = torch.arange(self.in_dim)
        for r in range(self.c):
            m.index_put_((rows, self.buckets[r]), self.signs[r], accumulate=True)
        return m

    @property
    def last_backend(self) -> str | None:
        """Alias of backend_used: the path ("torch" | "cpp" | "triton") of the last call."""
        return self.backend_used

    def dense_path(self, x: torch.Tensor) -> torch.Tensor:
        """Pure-torch reference, every column of x [B, d] scattered with index_add_ -> [B, k]."""
        return sjlt_dense(x, *self.tables(x.device), self.out_dim)

    def sparse_path(self, x: torch.Tensor) -> torch.Tensor:
        """Pure-torch reference over the nonzeros of x [B, d] only -> [B, k]."""
        return sjlt_sparse(x, *self.tables(x.device), self.out_dim)

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        out, self.backend_used = sjlt_project(x, *self.tables(x.device), self.out_dim, backend=self.backend)
        return out
