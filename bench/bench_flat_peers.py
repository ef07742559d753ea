"""Flat compressors on per-example gradients: ours vs dattri 0.3.0 and TRAK 0.3.2 CPU projectors.

Run: `.venv/bin/python bench/bench_flat_peers.py` (GRASS_BENCH_QUICK=1: seconds-long smoke sizes).
Writes flat_peers.json (bench/results/, or a temp folder in quick mode). Everything is timed in one
process, one cell at a time, against the same input: B = 64 rows, d in {1e5, 1e6}, k in {2048, 4096,
8192}, dense and 90 %-zero fp32 inputs; median of up to 5 calls after a warm-up.

Peers as their CPU users get them:
  dattri_normal / dattri_random_mask: `dattri.func.projection.random_project(x, B, k, 64, proj_seed=0,
    proj_type=..., device="cpu")`, which builds `BasicProjector(..., block_size=100)`. For k > 100 it
    keeps one [d, 100] block and redraws the whole [d, k] matrix block by block on every call.
  dattri_normal_1block: dattri's `BasicProjector(..., block_size=k)`, the matrix drawn once and kept
    (the best case for a dense CPU projector); only where d * k * 4 bytes fit the memory budget.
  trak_rademacher: `trak.projectors.BasicProjector(d, k, 0, ProjectionType.rademacher, "cpu")` (TRAKer's
    default projection type; block_size 100, so it also redraws every call). dattri's rademacher
    projector is the same code (bernoulli_, * 2 - 1, matmul), so only TRAK's is timed.

Cost control (full mode would otherwise take hours on 2 cores): a method that redraws its d x k matrix
on every call costs the same on any input, so it is timed on the dense input only, and the 90 %-zero cell
compares against that time (flagged `peer_timed_on_dense_input`). At d = 1e6 those methods run only in the
cell the issue targets, k = 4096 (dattri_normal; ours `gaussian` there needs 16 GB, so it redraws too and
is skipped). GRASS_BENCH_FULL_GRID=1 runs every method in every cell. A method whose working memory
exceeds the budget (GRASS_BENCH_MEM_GB, default 4) is skipped with the reason.

Bandwidth reference: `dst.copy_(x)` into a preallocated buffer reads and writes x once (2 x bytes);
`sjlt_copy_fraction` = (bytes of x / SJLT time) / (2 x bytes of x / copy time).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import benchlib
import torch

from grass.compress.dense import BLOCK_ROWS, Gaussian
from grass.compress.fjlt import FJLT
from grass.compress.grass_compressor import GraSS
from grass.compress.mask import RandomMask
from grass.compress.sjlt import SJLT

QUICK = benchlib.QUICK
FULL_GRID = benchlib.env_flag("GRASS_BENCH_FULL_GRID")
MEM_BUDGET = int(benchlib.env_float("GRASS_BENCH_MEM_GB", 4.0) * 2**30)
BATCH = 8 if QUICK else 64
DIMS = (20_000,) if QUICK else (100_000, 1_000_000)
KS = (256, 1024) if QUICK else (2048, 4096, 8192)
ZERO_FRACTIONS = (0.0, 0.9)
LARGE_D = 1_000_000  # from here on, redraw methods run only in ANCHOR_K cells (unless FULL_GRID)
ANCHOR_K = 4096
LARGE_D_REDRAW = ("dattri_normal",)  # the target peer; the others are skipped at d = 1e6
PAIRS = (  # (ours, peer) speedups reported: peer time / our time
    ("sjlt", "dattri_normal"), ("sjlt", "dattri_normal_1block"), ("sjlt", "trak_rademacher"),
    ("grass", "dattri_normal"), ("grass", "trak_rademacher"), ("fjlt", "dattri_normal"),
    ("gaussian", "dattri_normal"), ("gaussian", "dattri_normal_1block"),
    ("random_mask", "dattri_random_mask"),
)


@dataclass
class Method:
    name: str
    family: str  # ours | dattri | trak
    build: Callable[[torch.Tensor, int], Callable[[], torch.Tensor]]  # (x, k) -> timed call
    memory: Callable[[int, int], int]  # (d, k) -> bytes of projection state it holds or draws at once
    redraws: Callable[[int, int], bool]  # (d, k) -> whether each call redraws a d x k matrix


def _ours(cls, **kw):
    def build(x, k):
        comp = cls(x.shape[1], k, seed=0, **kw)
        fn = lambda: comp(x)  # noqa: E731
        fn.compressor = comp  # lets the row record which SJLT path ran
        return fn
    return build


def _gaussian_materialised(d: int, k: int) -> bool:
    return d * k * 4 <= MEM_BUDGET  # Gaussian caches its matrix exactly when it fits max_matrix_bytes


def _dattri(proj_type: str):
    def build(x, k):
        from dattri.func.projection import random_project
        project = random_project(x, x.shape[0], proj_dim=k, proj_max_batch_size=64, proj_seed=0,
                                 proj_type=proj_type, device="cpu")
        return lambda: project(x, ensemble_id=0)
    return build


def _dattri_one_block(x, k):
    from dattri.func.projection import BasicProjector, ProjectionType
    proj = BasicProjector(feature_dim=x.shape[1], proj_dim=k, seed=0, proj_type=ProjectionType.normal,
                          device=torch.device("cpu"), block_size=k)
    return lambda: proj.project(x, ensemble_id=0)


def _trak_rademacher(x, k):
    from trak.projectors import BasicProjector, ProjectionType
    proj = BasicProjector(grad_dim=x.shape[1], proj_dim=k, seed=0, proj_type=ProjectionType.rademacher,
                          device="cpu")
    return lambda: proj.project(x, model_id=0)


def _peer_block(d: int, k: int) -> int:
    return d * min(100, k) * 4  # BasicProjector's default block_size=100 columns


METHODS = (
    Method("sjlt", "ours", _ours(SJLT, c=1), lambda d, k: d * 16, lambda d, k: False),
    Method("grass", "ours", _ours(GraSS, blowup=4, c=1), lambda d, k: d * 8 + 4 * k * 16, lambda d, k: False),
    Method("random_mask", "ours", _ours(RandomMask), lambda d, k: k * 8, lambda d, k: False),
    Method("fjlt", "ours", _ours(FJLT), lambda d, k: BATCH * 2 * 4 * (1 << (d - 1).bit_length()),
           lambda d, k: False),
    Method("gaussian", "ours", _ours(Gaussian, max_matrix_bytes=MEM_BUDGET),
           lambda d, k: d * k * 4 if _gaussian_materialised(d, k) else BLOCK_ROWS * k * 4,
           lambda d, k: not _gaussian_materialised(d, k)),
    Method("dattri_normal", "dattri", _dattri("normal"), _peer_block, lambda d, k: k > 100),
    Method("dattri_normal_1block", "dattri", _dattri_one_block, lambda d, k: d * k * 4, lambda d, k: False),
    Method("dattri_random_mask", "dattri", _dattri("random_mask"), lambda d, k: k * 8, lambda d, k: False),
    Method("trak_rademacher", "trak", _trak_rademacher, _peer_block, lambda d, k: k > 100),
)


def skip_reason(m: Method, d: int, k: int, zero_frac: float) -> str | None:
    mem = m.memory(d, k)
    if mem > MEM_BUDGET:
        return f"memory: needs {mem / 2**30:.1f} GB of projection matrix > budget {MEM_BUDGET / 2**30:.0f} GB"
    if FULL_GRID or not m.redraws(d, k):
        return None
    if zero_frac:
        return "redraws its d x k matrix every call (cost independent of zeros): timed on the dense input only"
    if d >= LARGE_D and (k != ANCHOR_K or m.name not in LARGE_D_REDRAW):
        return (f"time: redraws a {d} x {k} matrix every call (tens of seconds); at d >= {LARGE_D:.0e} only "
                f"{', '.join(LARGE_D_REDRAW)} at k={ANCHOR_K} runs; GRASS_BENCH_FULL_GRID=1 runs it")
    return None


def run_cell(d: int, k: int, zero_frac: float, dense_times: dict) -> dict:
    x = benchlib.gradient_rows(BATCH, d, zero_frac)
    nbytes = x.numel() * 4
    dst = torch.empty_like(x)
    cell = {"d": d, "k": k, "zero_frac": zero_frac, "input_mb": nbytes / 2**20,
            "copy": benchlib.time_call(lambda: dst.copy_(x)), "results": {}}
    for m in METHODS:
        reason = skip_reason(m, d, k, zero_frac)
        if reason:
            cell["results"][m.name] = {"skipped": reason}
            continue
        try:
            fn = m.build(x, k)
            cell["results"][m.name] = {**benchlib.time_call(fn), "family": m.family,
                                       "redraws_every_call": m.redraws(d, k)}
            backend = getattr(getattr(fn, "compressor", None), "backend_used", None)
            if backend:
                cell["results"][m.name]["backend"] = backend
        except Exception as err:  # a peer that fails is recorded, never silently dropped
            cell["results"][m.name] = {"error": f"{type(err).__name__}: {err}"}
        r = cell["results"][m.name]
        status = f"{r['ms']:.1f} ms" if "ms" in r else r.get("skipped") or r.get("error")
        print(f"  d={d:.0e} k={k} zeros={zero_frac:.0%} {m.name}: {status}", file=sys.stderr, flush=True)
    if not zero_frac:
        dense_times[(d, k)] = {n: r["ms"] for n, r in cell["results"].items() if "ms" in r}
    cell["speedups"] = speedups(cell, dense_times.get((d, k), {}))
    copy_gb_s = 2 * nbytes / (cell["copy"]["ms"] * 1e-3) / 1e9
    cell["copy_gb_s"] = copy_gb_s
    if "ms" in cell["results"]["sjlt"]:
        cell["sjlt_read_gb_s"] = nbytes / (cell["results"]["sjlt"]["ms"] * 1e-3) / 1e9
        cell["sjlt_copy_fraction"] = cell["sjlt_read_gb_s"] / copy_gb_s
    return cell


def speedups(cell: dict, dense_times: dict) -> dict:
    """{"ours/peer": peer ms / our ms}; a peer skipped here because it redraws uses its dense-input time."""
    out = {}
    for ours, peer in PAIRS:
        mine, theirs = cell["results"].get(ours, {}), cell["results"].get(peer, {})
        if "ms" not in mine:
            continue
        if "ms" in theirs:
            out[f"{ours}/{peer}"] = {"speedup": theirs["ms"] / mine["ms"]}
        elif peer in dense_times and "dense input only" in theirs.get("skipped", ""):
            out[f"{ours}/{peer}"] = {"speedup": dense_times[peer] / mine["ms"], "peer_timed_on_dense_input": True}
    return out


def markdown(info: dict, cells: list[dict]) -> str:
    names = [m.name for m in METHODS]
    lines = [f"Flat compressors vs dattri/TRAK CPU projectors, B={BATCH}, fp32; {benchlib.machine_line(info)}"
             + (" (QUICK sizes)" if QUICK else ""), "",
             "| d | k | zeros | copy ms | " + " | ".join(f"{n} ms" for n in names) + " | SJLT / copy bandwidth |",
             "|" + "---|" * (5 + len(names))]
    for c in cells:
        vals = []
        for n in names:
            r = c["results"][n]
            vals.append(f"{r['ms']:.1f}" if "ms" in r else ("skip" if "skipped" in r else "error"))
        frac = f"{c['sjlt_copy_fraction']:.0%}" if "sjlt_copy_fraction" in c else "-"
        lines.append(f"| {c['d']:.0e} | {c['k']} | {c['zero_frac']:.0%} | {c['copy']['ms']:.1f} | "
                     + " | ".join(vals) + f" | {frac} |")
    lines += ["", "Speedups (peer time / our time; * = peer timed on the dense input, its cost ignores zeros):", "",
              "| d | k | zeros | " + " | ".join(f"{o} vs {p}" for o, p in PAIRS) + " |",
              "|" + "---|" * (3 + len(PAIRS))]
    for c in cells:
        vals = []
        for o, p in PAIRS:
            s = c["speedups"].get(f"{o}/{p}")
            vals.append(f"{s['speedup']:.1f}x{'*' if s.get('peer_timed_on_dense_input') else ''}" if s else "-")
        lines.append(f"| {c['d']:.0e} | {c['k']} | {c['zero_frac']:.0%} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main() -> None:
    versions = {p: benchlib.package_version(p) for p in ("dattri", "traker")}
    info = benchlib.machine()
    dense_times: dict = {}
    cells = [run_cell(d, k, z, dense_times) for d in DIMS for k in KS for z in ZERO_FRACTIONS]
    print(markdown(info, cells))
    benchlib.write_result(
        "flat_peers",
        {
            "machine": info,
            "versions": versions,
            "config": {
                "batch": BATCH,
                "dims": DIMS,
                "ks": KS,
                "zero_fractions": ZERO_FRACTIONS,
                "memory_budget_bytes": MEM_BUDGET,
                "full_grid": FULL_GRID,
                "measure_budget_s": benchlib.MEASURE_S,
                "large_d": LARGE_D,
                "anchor_k": ANCHOR_K,
                "large_d_redraw_methods": LARGE_D_REDRAW,
            },
            "cells": cells,
        },
    )


if __name__ == "__main__":
    main()
