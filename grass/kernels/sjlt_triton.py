"""The Triton SJLT kernel for CUDA tensors (on CPU only under TRITON_INTERPRET=1, for tests).

Importing this module imports triton; grass.kernels.dispatch imports it lazily and records why when it
cannot. One program handles BLOCK columns of one row: it loads the block of x, drops zeros from the
mask, and atomically adds s * scale * x into y[row, h] for each of the c table rows. Float atomics make
the summation order (hence the last bits of y) vary from run to run on a GPU; the CPU kernel does not.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

BLOCK = 1024  # columns per program
MAX_GRID_ROWS = 65535  # CUDA limit on grid axis 1, where rows go (column blocks take axis 0, up to 2^31)


def _sjlt_kernel(x_ptr, h_ptr, s_ptr, y_ptr, d, k, c, scale, BLOCK: tl.constexpr):
    """x [B, d], h/s [c, d], y [B, k] (float32, zeroed); program (column block, row)."""
    row = tl.program_id(1).to(tl.int64)
    cols = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    in_row = cols < d
    v = tl.load(x_ptr + row * d + cols, mask=in_row, other=0.0).to(tl.float32) * scale
    live = in_row & (v != 0.0)  # zero entries issue no atomics
    h_ptrs = h_ptr + cols  # pointer increments by d below: no int32 r * d overflow
    s_ptrs = s_ptr + cols
    y_row = y_ptr + row * k
    for _ in range(c):
        h = tl.load(h_ptrs, mask=live, other=0)
        s = tl.load(s_ptrs, mask=live, other=0).to(tl.float32)
        tl.atomic_add(y_row + h, s * v, mask=live)
        h_ptrs += d
        s_ptrs += d


@functools.cache
def _jitted(interpret: bool):
    """The jitted kernel; keyed on interpret mode because triton.jit picks the interpreter at decoration."""
    return triton.jit(_sjlt_kernel)


def interpreting() -> bool:
    """True when TRITON_INTERPRET is set: kernels then run in numpy on CPU tensors (slow, for tests)."""
    return bool(triton.knobs.runtime.interpret)


def sjlt_forward(x: torch.Tensor, h: torch.Tensor, s: torch.Tensor, k: int, scale: float = 1.0) -> torch.Tensor:
    """x [B, d] contiguous (fp32/fp16/bf16), h [c, d] int64|int32, s [c, d] float32|int8 -> y [B, k] float32."""
    B, d = x.shape
    y = torch.zeros(B, int(k), dtype=torch.float32, device=x.device)
    if x.numel() == 0:
        return y
    kernel = _jitted(interpreting())
    col_blocks = triton.cdiv(d, BLOCK)
    for start in range(0, B, MAX_GRID_ROWS):
        rows = min(MAX_GRID_ROWS, B - start)
        kernel[(col_blocks, rows)](x[start:], h, s, y[start:], d, int(k), h.shape[0], float(scale), BLOCK=BLOCK)
    return y
