"""A Hadamard-based fast JL transform (SPEC 3).

C(x) = S H D x / sqrt(k): D random signs [d], zero-pad to n = 2^q >= d, H the unnormalised Sylvester
Walsh-Hadamard matrix [n, n] (applied in O(n log n), never built), S keeps k seeded coordinates drawn
without replacement. Equivalent to sqrt(n / k) with the orthonormal H / sqrt(n).
This is a real FJLT; the GraSS paper's "FJLT" was TRAK's Rademacher CUDA kernel (see `rademacher`).
"""

from __future__ import annotations

import math

import torch

from grass.compress.base import Compressor
from grass.errors import GrassError
from grass.seeding import generator


def sylvester(n: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The unnormalised Sylvester Hadamard matrix H_n [n, n] (n a power of two), built by doubling."""
    h = torch.ones(1, 1, dtype=dtype, device=device)
    while h.shape[0] < n:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
    return h


def walsh_hadamard(x: torch.Tensor, max_factor: int = 64) -> torch.Tensor:
    """Unnormalised fast Walsh-Hadamard transform of each row: x [B, n] -> x @ H_n [B, n].

    n must be a power of two. Sylvester's H_n is a Kronecker product of smaller Sylvester matrices,
    H_n = H_n1 (x) H_n2 (x) ..., so viewing each row as an [n1, n2, ...] tensor and multiplying every axis
    by its small symmetric H_ni gives x @ H_n in O(n * sum n_i) work as a few dense matmuls, which runs
    far faster than log2(n) elementwise butterfly passes on CPU and GPU alike. Each axis is multiplied in
    place in the row-major layout (the last from the right, the others from the left as H @ [pre, n_i,
    post]), so no axis is moved and copied (1.2-1.7x faster than moving each axis last).
    """
    batch, n = x.shape
    if n & (n - 1) or n == 0:
        raise GrassError(f"walsh_hadamard needs a power-of-two width, got {n}")
    factors, rest = [], n
    while rest > 1:
        factors.append(min(rest, max_factor))
        rest //= factors[-1]
    if not factors:  # n = 1: H_1 = [1]
        return x.clone()
    y = x.reshape(-1, factors[-1]) @ sylvester(factors[-1], dtype=x.dtype, device=x.device)
    pre, post = batch, n
    for size in factors[:-1]:
        post //= size
        y = sylvester(size, dtype=x.dtype, device=x.device) @ y.reshape(pre, size, post)
        pre *= size
    return y.reshape(batch, n)


class FJLT(Compressor):
    """x [B, d] -> (H (D * x_padded))[:, I] / sqrt(k) [B, k], float32."""

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0) -> None:
        super().__init__(in_dim, out_dim, seed)
        self.padded_dim = 1 << max(0, math.ceil(math.log2(self.in_dim)))
        if self.out_dim > self.padded_dim:
            raise GrassError(
                f"FJLT: proj_dim k={self.out_dim} exceeds the padded Hadamard size 2^q={self.padded_dim} "
                f"(in_dim d={self.in_dim}); use k <= {self.padded_dim} or another compressor"
            )
        signs = torch.randint(0, 2, (self.in_dim,), generator=generator(self.seed, "signs"))
        self.signs = signs.to(torch.float32) * 2 - 1  # [d]
        perm = torch.randperm(self.padded_dim, generator=generator(self.seed, "coords"))
        self.coords = perm[: self.out_dim].sort().values  # [k], sorted for memory locality
        self.scale = 1.0 / math.sqrt(self.out_dim)

    def _extra_fingerprint(self) -> dict:
        return {"padded_dim": self.padded_dim}

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        signs, coords = self.signs.to(x.device), self.coords.to(x.device)
        padded = torch.zeros(x.shape[0], self.padded_dim, dtype=torch.float32, device=x.device)
        padded[:, : self.in_dim] = x.to(torch.float32) * signs
        return walsh_hadamard(padded)[:, coords] * self.scale
