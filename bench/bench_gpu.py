"""The suite's GPU runs: the SJLT kernel vs the pure-torch reference and a copy, and factgrass vs logra.

Run: `.venv/bin/python bench/bench_gpu.py` (`make bench` runs it). Writes gpu.json with the GPU named
(torch.cuda.get_device_name, capability, CUDA and Triton versions). Without a CUDA device it writes
gpu.json saying so and measures nothing: no GPU number is ever estimated.
GRASS_BENCH_DEVICE=cpu runs the same measurements on the CPU (the C++ kernel instead of Triton); the
tests use it to run this script where there is no GPU, and the results are labelled with that device.

Measured, each on one input in one process, GPU work synchronized before every clock read:
  sjlt: B = 64 rows, d in {1e5, 1e6}, k in {2048, 4096, 8192}, dense and 90 %-zero fp32 inputs; the
    kernel `backend=auto` picks (Triton on CUDA) vs grass.kernels.sjlt_reference, and `dst.copy_(x)`
    (reads + writes x: the device's memory bandwidth in the same run); the largest difference from the
    reference is recorded with each row.
  factorized: bench_factorized's GPT-2-small layer shapes, T = 512, K in {256, 1024, 4096}, factors on
    the device.
"""

from __future__ import annotations

import os
import sys

import bench_factorized
import benchlib
import torch

from grass.compress.sjlt import SJLT
from grass.kernels.dispatch import prepare, sjlt_project
from grass.kernels.sjlt_reference import sjlt_reference

QUICK = benchlib.QUICK
BATCH = 8 if QUICK else 64
DIMS = (20_000,) if QUICK else (100_000, 1_000_000)
KS = (256,) if QUICK else (2048, 4096, 8192)
ZERO_FRACTIONS = (0.0, 0.9)
FACT_BATCH, FACT_TOKENS = (2, 32) if QUICK else (4, 512)
FACT_SHAPES = bench_factorized.SHAPES[:2] if QUICK else bench_factorized.SHAPES


def pick_device() -> tuple[torch.device | None, str | None]:
    """(device, None) to measure on, or (None, why nothing is measured)."""
    forced = os.environ.get("GRASS_BENCH_DEVICE", "").strip()
    if forced:
        return torch.device(forced), None
    if torch.cuda.is_available():
        return torch.device("cuda"), None
    return None, "no CUDA device (torch.cuda.is_available() is False); nothing measured"


def describe(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"type": device.type, "name": f"CPU (GRASS_BENCH_DEVICE={device.type}, not a GPU)"}
    props = torch.cuda.get_device_properties(device)
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {"type": "cuda", "name": torch.cuda.get_device_name(device), "capability": [props.major, props.minor],
            "memory_gb": props.total_memory / 2**30, "cuda": torch.version.cuda, "triton": triton_version}


def sjlt_cell(device: torch.device, d: int, k: int, zero_frac: float) -> dict:
    comp = SJLT(d, k, seed=0, c=1)
    h, s = comp.buckets.to(device), comp.signs.to(device)
    x = benchlib.gradient_rows(BATCH, d, zero_frac).to(device)
    dst = torch.empty_like(x)
    sync = benchlib.device_sync(device)
    out, path = sjlt_project(x, h, s, k)
    ref = sjlt_reference(x, h, s, k)
    row = {"d": d, "k": k, "zero_frac": zero_frac, "kernel_path": path,
           "max_abs_diff": (out - ref).abs().max().item(), "max_abs_ref": ref.abs().max().item(),
           "kernel": benchlib.time_call(lambda: sjlt_project(x, h, s, k), sync=sync),
           "reference": benchlib.time_call(lambda: sjlt_reference(x, h, s, k), sync=sync),
           "copy": benchlib.time_call(lambda: dst.copy_(x), sync=sync)}
    nbytes = x.numel() * x.element_size()
    row["kernel_over_reference"] = row["reference"]["ms"] / row["kernel"]["ms"]
    row["kernel_read_gb_s"] = nbytes / (row["kernel"]["ms"] * 1e-3) / 1e9
    row["copy_gb_s"] = 2 * nbytes / (row["copy"]["ms"] * 1e-3) / 1e9
    row["kernel_copy_fraction"] = row["kernel_read_gb_s"] / row["copy_gb_s"]
    print(f"  sjlt d={d:.0e} k={k} zeros={zero_frac:.0%}: {path} {row['kernel']['ms']:.2f} ms, reference "
          f"{row['reference']['ms']:.2f} ms, copy {row['copy']['ms']:.2f} ms", file=sys.stderr, flush=True)
    return row


def markdown(device_info: dict, sjlt_rows: list[dict], fact_rows: list[dict], fact_totals: dict) -> str:
    lines = [
        f"GPU runs on {device_info['name']}" + (" (QUICK sizes)" if QUICK else ""),
        "",
        "| d | k | zeros | path | kernel ms | reference ms | copy ms | kernel / reference | kernel / copy bw "
        "| max diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sjlt_rows:
        lines.append(
            f"| {r['d']:.0e} | {r['k']} | {r['zero_frac']:.0%} | {r['kernel_path']} | {r['kernel']['ms']:.2f} | "
            f"{r['reference']['ms']:.2f} | {r['copy']['ms']:.2f} | {r['kernel_over_reference']:.1f}x | "
            f"{r['kernel_copy_fraction']:.0%} | {r['max_abs_diff']:.1e} |"
        )
    lines += ["", "| K | logra ms (shapes) | factgrass ms (shapes) | logra / factgrass |", "|---|---|---|---|"]
    for k, t in fact_totals.items():
        lines.append(
            f"| {k} | {t['logra_ms_5_shapes']:.2f} | {t['factgrass_ms_5_shapes']:.2f} | {t['ratio_5_shapes']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    info = benchlib.machine()
    device, why = pick_device()
    if device is None:
        print(why)
        benchlib.write_result("gpu", {"machine": info, "device": None, "not_run": why})
        return
    prepare(device)  # builds / loads the kernel before any timed call
    device_info = describe(device)
    sjlt_rows = [sjlt_cell(device, d, k, z) for d in DIMS for k in KS for z in ZERO_FRACTIONS]
    fact_rows = [
        r
        for name, i, o, bias, _ in FACT_SHAPES
        for r in bench_factorized.bench_shape(name, i, o, bias, FACT_BATCH, FACT_TOKENS, device)
    ]
    fact_totals = bench_factorized.totals(fact_rows)
    print(markdown(device_info, sjlt_rows, fact_rows, fact_totals))
    benchlib.write_result(
        "gpu",
        {
            "machine": info,
            "device": device_info,
            "config": {
                "batch": BATCH,
                "dims": DIMS,
                "ks": KS,
                "zero_fractions": ZERO_FRACTIONS,
                "factorized_batch": FACT_BATCH,
                "factorized_tokens": FACT_TOKENS,
                "factorized_shapes": [s[0] for s in FACT_SHAPES],
                "measure_budget_s": benchlib.MEASURE_S,
            },
            "sjlt": sjlt_rows,
            "factorized": {"rows": fact_rows, "totals": fact_totals},
        },
    )


if __name__ == "__main__":
    main()
