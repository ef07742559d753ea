"""SJLT kernels on CPU: pure-torch reference vs the C++ kernel, against a plain copy of the same input.

Run: `.venv/bin/python bench/bench_sjlt_kernels.py`. Prints a markdown table and writes
bench/results/sjlt_kernels.json. Shapes follow the task: B = 64 rows, k = 4096, c = 1, d in {1e5, 1e6},
dense and 90 %-zero fp32 inputs. `x.clone()` reads and writes x once, so a kernel that only reads x
(and writes the small [B, k] output) can at best run about as fast as the copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from benchlib import gradient_rows, machine, time_call  # bench/ is the script's folder, first on sys.path

from grass.compress.sjlt import SJLT
from grass.kernels import sjlt_cpu
from grass.kernels.sjlt_reference import sjlt_reference

BATCH, K, C = 64, 4096, 1
DIMS = (100_000, 1_000_000)
ZERO_FRACTIONS = (0.0, 0.9)
REPEATS = 5
OUT = Path(__file__).resolve().parent / "results" / "sjlt_kernels.json"


def bench_case(d: int, zero_frac: float) -> dict:
    """Times for one (d, sparsity): reference, C++ (the compressor's int64/float tables and int32/int8 ones), copy."""
    comp = SJLT(d, K, seed=0, c=C)
    h, s = comp.buckets, comp.signs  # what SJLT hands the kernels: int64 buckets, signs with 1/sqrt(c) folded in
    h32, s8, scale = h.to(torch.int32), torch.sign(s).to(torch.int8), 1.0 / C ** 0.5
    x = gradient_rows(BATCH, d, zero_frac)
    ref_out, cpp_out = sjlt_reference(x, h, s, K), sjlt_cpu.sjlt_forward(x, h, s, K)
    max_err = (ref_out - cpp_out).abs().max().item()
    row = {"d": d, "zero_frac": zero_frac, "input_mb": x.numel() * 4 / 2**20, "max_abs_diff": max_err}
    for name, fn in (("reference", lambda: sjlt_reference(x, h, s, K)),
                     ("cpp", lambda: sjlt_cpu.sjlt_forward(x, h, s, K)),
                     ("cpp_compact_tables", lambda: sjlt_cpu.sjlt_forward(x, h32, s8, K, scale)),
                     ("clone", lambda: x.clone())):
        timing = time_call(fn, repeats=REPEATS)  # median wall and process-CPU ms after a warm-up call
        row[f"{name}_ms"], row[f"{name}_cpu_ms"] = timing["ms"], timing["cpu_ms"]
    row["speedup_vs_reference"] = row["reference_ms"] / row["cpp_ms"]
    row["cpp_over_clone"] = row["cpp_ms"] / row["clone_ms"]
    row["speedup_vs_reference_cpu"] = row["reference_cpu_ms"] / row["cpp_cpu_ms"]
    row["cpp_read_gb_s"] = x.numel() * 4 / (row["cpp_ms"] * 1e-3) / 1e9
    return row


def markdown(info: dict, rows: list[dict]) -> str:
    head = (f"SJLT CPU kernels, B={BATCH}, k={K}, c={C}, fp32; {info['cpu_model'] or info['processor']} "
            f"({info['machine']}), {info['cpu_count']} CPUs, torch {info['torch']} with "
            f"{info['torch_threads']} threads, 1-min load average {info['load_average_1min']:.1f}\n\n")
    lines = ["| d | zeros | x MB | reference ms | cpp ms | cpp int32/int8 ms | clone ms | ref / cpp | cpp / clone "
             "| cpp GB/s read | reference CPU ms | cpp CPU ms | ref / cpp (CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['d']:.0e} | {r['zero_frac']:.0%} | {r['input_mb']:.0f} | {r['reference_ms']:.1f} | "
                     f"{r['cpp_ms']:.1f} | {r['cpp_compact_tables_ms']:.1f} | {r['clone_ms']:.1f} | "
                     f"{r['speedup_vs_reference']:.1f}x | {r['cpp_over_clone']:.2f} | {r['cpp_read_gb_s']:.2f} | "
                     f"{r['reference_cpu_ms']:.1f} | {r['cpp_cpu_ms']:.1f} | {r['speedup_vs_reference_cpu']:.1f}x |")
    notes = ("\n\nms = median wall time of 5 runs; CPU ms = process CPU time (all threads). "
             "clone reads and writes x once (a fresh 244 MB buffer also pays page faults).")
    return head + "\n".join(lines) + notes


def main() -> None:
    op, reason = sjlt_cpu.extension()
    if op is None:
        raise SystemExit(f"the C++ SJLT kernel did not build: {reason}")
    info = machine()
    rows = [bench_case(d, z) for d in DIMS for z in ZERO_FRACTIONS]
    print(markdown(info, rows))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": info, "batch": BATCH, "k": K, "c": C, "repeats": REPEATS,
                               "rows": rows}, indent=2))
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
