"""Pure-torch SJLT (SPEC 3): the oracle every fast kernel is tested against, and the always-available path.

Tables: buckets h [c, d] (int64 or int32, values in [0, k)) and signs s [c, d] (float, possibly with the
1/sqrt(c) scale folded in, or int8 +-1), and a scalar `scale`. For one row x [d]:
    y[h[r, j]] += (s[r, j] * scale) * x[j]   for r < c, j < d,   accumulated in float32.
Zero entries of x contribute nothing, so the sparse path that visits only nonzeros gives the same answer.
"""

from __future__ import annotations

import torch

SPARSE_BELOW = 0.3  # nonzero fraction under which the sparse path is faster than the dense one


def _scaled_signs(signs: torch.Tensor, scale: float) -> torch.Tensor:
    """signs [c, d] -> float32 signs times scale (left untouched when scale == 1, so folded tables stay exact)."""
    signs = signs.to(torch.float32)
    return signs if scale == 1.0 else signs * scale


def sjlt_dense(x: torch.Tensor, buckets: torch.Tensor, signs: torch.Tensor, k: int, scale: float = 1.0) -> torch.Tensor:
    """Scatter every column of x [B, d]: c passes of index_add_ along dim 1 -> y [B, k] float32."""
    signs = _scaled_signs(signs, scale)
    x = x.to(torch.float32)
    out = torch.zeros(x.shape[0], k, dtype=torch.float32, device=x.device)
    for r in range(buckets.shape[0]):
        out.index_add_(1, buckets[r], x * signs[r])
    return out


def sjlt_sparse(
    x: torch.Tensor, buckets: torch.Tensor, signs: torch.Tensor, k: int, scale: float = 1.0
) -> torch.Tensor:
    """Scatter only the nonzeros of x [B, d] into a flat [B * k] output (index b * k + h) -> y [B, k] float32."""
    signs = _scaled_signs(signs, scale)
    rows, cols = x.nonzero(as_tuple=True)  # row-major, so each bucket sums its terms in j order
    values = x[rows, cols].to(torch.float32)
    out = torch.zeros(x.shape[0] * k, dtype=torch.float32, device=x.device)
    base = rows * k
    for r in range(buckets.shape[0]):
        out.index_add_(0, base + buckets[r, cols], values * signs[r, cols])
    return out.view(x.shape[0], k)


def sjlt_reference(
    x: torch.Tensor, buckets: torch.Tensor, signs: torch.Tensor, k: int, scale: float = 1.0
) -> torch.Tensor:
    """x [B, d] -> y [B, k] float32 through whichever of the dense / sparse paths suits x's density."""
    if x.numel() == 0:
        return torch.zeros(x.shape[0], k, dtype=torch.float32, device=x.device)
    density = torch.count_nonzero(x).item() / x.numel()
    path = sjlt_sparse if density < SPARSE_BELOW else sjlt_dense
    return path(x, buckets, signs, k, scale)
