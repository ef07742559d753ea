"""Dense Johnson-Lindenstrauss maps (SPEC 3): x @ G / sqrt(k), G [d, k] iid N(0, 1) or +-1.

G is generated in fixed blocks of BLOCK_ROWS rows, block i from its own generator seeded by
derive_seed(seed, "block", i). The product is always accumulated block by block in the same order,
so caching the blocks (small matrices) and regenerating them on every call (huge matrices) give
bit-identical outputs; `max_matrix_bytes` only trades memory for time.
"""

from __future__ import annotations

import math

import torch

from grass.compress.base import Compressor
from grass.errors import GrassError
from grass.seeding import generator

BLOCK_ROWS = 4096
DEFAULT_MAX_MATRIX_BYTES = 4 * 1024**3


class _DenseJL(Compressor):
    """Shared block-wise machinery; subclasses say how one block of G is drawn."""

    def __init__(
        self, in_dim: int, out_dim: int, seed: int = 0, max_matrix_bytes: int = DEFAULT_MAX_MATRIX_BYTES
    ) -> None:
        super().__init__(in_dim, out_dim, seed)
        max_matrix_bytes = int(max_matrix_bytes)
        if max_matrix_bytes < 0:
            raise GrassError(f"{type(self).__name__}: max_matrix_bytes must be >= 0, got {max_matrix_bytes}")
        self.max_matrix_bytes = max_matrix_bytes
        self.scale = 1.0 / math.sqrt(self.out_dim)
        self._cached: list[torch.Tensor] | None = None  # scaled blocks on the device last used

    @property
    def materialised(self) -> bool:
        """Whether the whole matrix fits the memory budget and is cached after the first call."""
        return self.in_dim * self.out_dim * 4 <= self.max_matrix_bytes

    def _draw(self, rows: int, g: torch.Generator) -> torch.Tensor:
        """One unscaled block [rows, k] float32, drawn on the CPU (same bits on every machine)."""
        raise NotImplementedError

    def _block(self, i: int) -> torch.Tensor:
        """Scaled block i of the matrix: rows [i * BLOCK_ROWS, ...) of G / sqrt(k), [rows, k]."""
        rows = min(BLOCK_ROWS, self.in_dim - i * BLOCK_ROWS)
        return self._draw(rows, generator(self.seed, "block", i)) * self.scale

    def _num_blocks(self) -> int:
        return -(-self.in_dim // BLOCK_ROWS)

    def _blocks(self, device: torch.device):
        """Yield the scaled blocks on `device`, from the cache when the matrix is materialised."""
        if not self.materialised:
            for i in range(self._num_blocks()):
                yield self._block(i).to(device)
            return
        if self._cached is None or self._cached[0].device != device:
            self._cached = [self._block(i).to(device) for i in range(self._num_blocks())]
        yield from self._cached

    def matrix(self) -> torch.Tensor:
        """The explicit scaled map M [d, k] float32 with C(x) = x @ M (up to summation order)."""
        return torch.cat([self._block(i) for i in range(self._num_blocks())], dim=0)

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.out_dim, dtype=torch.float32, device=x.device)
        for i, block in enumerate(self._blocks(x.device)):
            start = i * BLOCK_ROWS
            out += x[:, start : start + block.shape[0]].to(torch.float32) @ block
        return out


class Gaussian(_DenseJL):
    """x [B, d] -> x @ G / sqrt(k) [B, k], G iid N(0, 1)."""

    def _draw(self, rows: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(rows, self.out_dim, generator=g, dtype=torch.float32)


class Rademacher(_DenseJL):
    """x [B, d] -> x @ R / sqrt(k) [B, k], R iid uniform on {+1, -1}."""

    def _draw(self, rows: int, g: torch.Generator) -> torch.Tensor:
        bits = torch.randint(0, 2, (rows, self.out_dim), generator=g, dtype=torch.int8)
        return bits.to(torch.float32) * 2 - 1
