"""Choose and run an SJLT path: "auto" | "torch" | "cpp" | "triton", and say which one ran.

auto: the Triton kernel for CUDA tensors when triton imports, the C++ kernel for CPU tensors when it
builds, otherwise the pure-torch reference (the reason is logged once, where it is discovered, and the
returned path name lets the caller record it). An explicitly requested kernel that cannot run is an
error, never a silent substitution. All paths compute the same map (equal up to fp32 summation order).
"""

from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType
from typing import Callable

import torch

from grass.errors import GrassError
from grass.kernels import sjlt_cpu
from grass.kernels.sjlt_reference import sjlt_reference

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "cpp", "triton")
MAX_CHUNK_ELEMENTS = 2**31 - 1  # rows per kernel call are capped so rows * max(d, k) stays int32-indexable


def check_backend(backend: str) -> str:
    """backend if it names a path, else GrassError listing the choices."""
    if backend not in BACKENDS:
        raise GrassError(f"SJLT backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


@functools.cache
def triton_module() -> tuple[ModuleType | None, str | None]:
    """(grass.kernels.sjlt_triton, None) when triton imports, else (None, reason); tried once per process."""
    try:
        return importlib.import_module("grass.kernels.sjlt_triton"), None
    except Exception as err:  # ImportError, or a broken triton install: the optional fast path is missing
        reason = f"{type(err).__name__}: {err}"
        log.warning("SJLT Triton kernel unavailable (%s); backend='auto' uses the pure-torch path on CUDA "
                    "(same results, slower), backend='triton' fails.", reason)
        return None, reason


def resolve_backend(backend: str, device: torch.device) -> str:
    """The path ("torch" | "cpp" | "triton") that `backend` runs on `device`; GrassError if it cannot run."""
    check_backend(backend)
    if backend == "torch":
        return "torch"
    if backend == "triton" or (backend == "auto" and device.type == "cuda"):
        module, reason = triton_module()
        if module is not None and (device.type == "cuda" or module.interpreting()):
            return "triton"
        if backend == "auto":
            return "torch"
        if module is None:
            raise GrassError(f"SJLT backend 'triton' requested but triton is unavailable ({reason}); "
                             "use backend=auto or backend=torch")
        raise GrassError(f"SJLT backend 'triton' needs a CUDA tensor (got {device.type}; TRITON_INTERPRET=1 "
                         "runs it on CPU for testing); use backend=auto")
    if device.type == "cpu":  # auto or cpp
        op, reason = sjlt_cpu.extension()
        if op is not None:
            return "cpp"
        if backend == "auto":
            return "torch"
        raise GrassError(f"SJLT backend 'cpp' requested but the C++ kernel could not be built ({reason}); "
                         "use backend=auto or backend=torch")
    if backend == "cpp":
        raise GrassError(f"SJLT backend 'cpp' runs on CPU tensors only (got {device.type}); use backend=auto")
    return "torch"  # auto on a device without a kernel (mps, xpu): the reference is the only path


def prepare(device: torch.device) -> str:
    """Build / load the kernel backend='auto' uses on `device` now (a first build can take ~20 s), so that
    timed compression never pays for it; returns the path name."""
    return resolve_backend("auto", torch.device(device))


def _kernel(path: str) -> Callable[..., torch.Tensor]:
    if path == "cpp":
        return sjlt_cpu.sjlt_forward
    if path == "triton":
        return triton_module()[0].sjlt_forward
    return sjlt_reference


def sjlt_project(x: torch.Tensor, buckets: torch.Tensor, signs: torch.Tensor, k: int, scale: float = 1.0,
                 backend: str = "auto", max_chunk_elements: int = MAX_CHUNK_ELEMENTS,
                 cols: torch.Tensor | None = None) -> tuple[torch.Tensor, str]:
    """Apply the SJLT tables to x [B, d] (or to its columns `cols`) -> (y [B, k] float32, path that ran).

    buckets [c, n] int64|int32 with values in [0, k), signs [c, n] float32|int8, both on x's device;
    y[b, buckets[r, j]] += signs[r, j] * scale * x[b, col_j], col_j = j (n = d) or cols[j] when cols [n] int64
    (distinct, in [0, d), on x's device) is given: GraSS's mask then SJLT. The C++ path fuses the two stages
    (one pass over the selected columns, no [B, n] copy, equal bit for bit); the others gather x[:, cols] first.
    Rows are processed in chunks whose rows * max(d, k) stays below max_chunk_elements, so no kernel sees an
    index past int32.
    """
    path = resolve_backend(backend, x.device)
    B, d = x.shape
    if B == 0:
        return torch.zeros(0, int(k), dtype=torch.float32, device=x.device), path
    fused = cols is not None and path == "cpp"
    if cols is not None and not fused:
        x = torch.gather(x, 1, cols.expand(B, -1))  # stride-0 index: the cheapest CPU gather (see IndexMask)
        d = x.shape[1]
    if path != "torch":
        if not x.is_floating_point():
            x = x.to(torch.float32)
        x, buckets, signs = x.contiguous(), buckets.contiguous(), signs.contiguous()
    run = _kernel(path)
    if fused:
        def run(rows_x, h, s, k_, scale_):
            return sjlt_cpu.sjlt_forward_masked(rows_x, cols.contiguous(), h, s, k_, scale_)
    rows = max(1, max_chunk_elements // max(d, int(k)))
    if rows >= B:
        return run(x, buckets, signs, int(k), float(scale)), path
    y = torch.empty(B, int(k), dtype=torch.float32, device=x.device)
    for start in range(0, B, rows):
        y[start:start + rows] = run(x[start:start + rows], buckets, signs, int(k), float(scale))
    return y, path
