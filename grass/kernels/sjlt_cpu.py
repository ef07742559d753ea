"""The C++ SJLT kernel for CPU tensors (kernels/sjlt_cpu.cpp), compiled with ninja at first use.

The source lives in the repository's top-level kernels/ folder; a wheel carries it as package data in
grass/kernels/csrc/ (pyproject.toml maps the data-only package grass.kernels.csrc to kernels/).

torch.utils.cpp_extension caches the build in the default torch extensions directory
(TORCH_EXTENSIONS_DIR, else ~/.cache/torch_extensions) under the extension name. The name carries a hash of
the source, the build flags, the torch version, torch's install folder (build.ninja names its headers and
libraries by that path, so two environments sharing one folder would recompile each other's build on every
switch) and the C++ compiler (`extension_name`), so several checkouts on one environment share one build when
their sources agree and never rebuild each other's when they differ; only the first run pays the compile
(about 30 s on 2 cores), announced by one log line. ninja compiles
from a copy of the source inside that folder (`<build>/src/sjlt_cpu.cpp`), never from the checkout's own path:
build.ninja names its sources by path, so two clones compiling from their own paths would rewrite it and
recompile each other's build on every switch. torch guards a build with a `lock` file that a killed build leaves
behind, and every later process would wait on it forever: grass builds under its own lock (`grass.lock`,
filelock: released when its holder dies) and, holding it, removes such a leftover. The ops are registered as
torch.ops.grass_sjlt.sjlt_forward and
.sjlt_forward_masked (GraSS's mask + SJLT fused).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock

log = logging.getLogger(__name__)

SOURCE_NAME = "sjlt_cpu.cpp"
# installed from a wheel: the package data; a checkout or an editable install: the repository's kernels/
SOURCE_CANDIDATES = (Path(__file__).parent / "csrc" / SOURCE_NAME,
                     Path(__file__).resolve().parents[2] / "kernels" / SOURCE_NAME)
EXTENSION_PREFIX = "grass_sjlt_cpu"
# -fopenmp: at::parallel_for is a header template that runs serially unless _OPENMP is defined;
# -ffp-contract=off: no fused multiply-adds, so the panel and row paths round alike on every ISA
CFLAGS = ("-O3", "-fopenmp", "-ffp-contract=off")
LDFLAGS = ("-fopenmp",)


def source() -> Path:
    """The kernel's C++ source: the first of SOURCE_CANDIDATES that exists; raises naming them all if none."""
    for path in SOURCE_CANDIDATES:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SOURCE_NAME} not found at {' or '.join(map(str, SOURCE_CANDIDATES))}")


def compiler() -> str:
    """The C++ compiler cpp_extension uses ($CXX, else c++), resolved to its path ("" when none is found)."""
    cxx = os.environ.get("CXX", "c++")
    return shutil.which(cxx) or cxx


def torch_dir() -> str:
    """The folder torch is imported from, as cpp_extension writes it into build.ninja (not resolved)."""
    return os.path.dirname(torch.__file__)


def extension_name(source_bytes: bytes, torch_version: str | None = None, cxx: str | None = None,
                   torch_path: str | None = None) -> str:
    """`grass_sjlt_cpu_<12 hex>`: the build folder's name, a hash of the source bytes, the build flags, the torch
    version, torch's folder and the compiler path. Same inputs -> same name (one shared build); any difference ->
    another folder."""
    h = hashlib.blake2b(digest_size=6)
    for part in (source_bytes, " ".join(CFLAGS + LDFLAGS).encode(), (torch_version or torch.__version__).encode(),
                 (cxx if cxx is not None else compiler()).encode(), (torch_path or torch_dir()).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return f"{EXTENSION_PREFIX}_{h.hexdigest()}"


def _build() -> None:
    """Compile (or load the cached build of) sjlt_cpu.cpp and register its op; raises on any failure."""
    from torch.utils import cpp_extension

    src = source()
    name = extension_name(src.read_bytes())
    build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
    with FileLock(build_dir / "grass.lock"):
        baton = build_dir / "lock"  # torch's FileBaton; under grass's lock no live grass build holds it
        if baton.exists():
            log.warning("removing %s, left by a build that was killed (torch would wait on it forever)", baton)
            baton.unlink(missing_ok=True)
        if not (build_dir / f"{name}.so").is_file():
            log.warning("building the C++ SJLT kernel (once, ~30 s) from %s into %s", src, build_dir)
        build_source = shared_source(src, build_dir)
        cpp_extension.load(name=name, sources=[str(build_source)], extra_cflags=list(CFLAGS),
                           extra_ldflags=list(LDFLAGS), build_directory=str(build_dir), is_python_module=False,
                           verbose=False)


def shared_source(src: Path, build_dir: Path) -> Path:
    """`<build_dir>/src/sjlt_cpu.cpp`, a copy of src written once (the folder's name is a hash of these bytes, so
    every checkout has the same copy; it is never rewritten, so its mtime never makes ninja recompile)."""
    copy = build_dir / "src" / SOURCE_NAME
    data = src.read_bytes()
    if not (copy.is_file() and copy.read_bytes() == data):
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, copy)
    return copy


@functools.cache
def extension() -> tuple[Callable | None, str | None]:
    """(op, None) once the kernel is built and loaded, else (None, reason); tried once per process.

    The failure is logged here, once, because this is the only place it is discovered.
    """
    try:
        _build()
        return torch.ops.grass_sjlt.sjlt_forward, None
    except Exception as err:  # compiler, ninja or loader failure: the optional fast path is missing
        lines = str(err).strip().splitlines()  # a compiler failure ends with the one-line summary
        reason = f"{type(err).__name__}: {lines[-1] if lines else ''}"
        log.warning("SJLT C++ CPU kernel unavailable (%s); backend='auto' uses the pure-torch path on CPU "
                    "(same results, slower), backend='cpp' fails. Install ninja and a C++ compiler to enable it.",
                    reason)
        return None, reason


def sjlt_forward(x: torch.Tensor, h: torch.Tensor, s: torch.Tensor, k: int, scale: float = 1.0) -> torch.Tensor:
    """x [B, d] contiguous (fp32/fp16/bf16/fp64), h [c, d] int64|int32, s [c, d] float32|int8 -> y [B, k] float32."""
    op, reason = extension()
    if op is None:
        raise RuntimeError(f"SJLT C++ kernel unavailable: {reason}")
    return op(x, h, s, int(k), float(scale))


def sjlt_forward_masked(x: torch.Tensor, cols: torch.Tensor, h: torch.Tensor, s: torch.Tensor, k: int,
                        scale: float = 1.0) -> torch.Tensor:
    """sjlt_forward(x[:, cols], h, s, k, scale) in one pass, bit for bit: x [B, d] contiguous, cols [n] int64
    (distinct, in [0, d)), h [c, n] int64|int32, s [c, n] float32|int8 -> y [B, k] float32."""
    op, reason = extension()
    if op is None:
        raise RuntimeError(f"SJLT C++ kernel unavailable: {reason}")
    return torch.ops.grass_sjlt.sjlt_forward_masked(x, cols, h, s, int(k), float(scale))
