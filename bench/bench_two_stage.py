"""GraSS's two stages (random mask to k', then SJLT to k) vs SJLT alone, side by side on the small settings' p.

Run: `.venv/bin/python bench/bench_two_stage.py` (GRASS_BENCH_QUICK=1: a smaller p and batch, one round).
Writes two_stage.json (bench/results/, or a temp folder in quick mode). For each p (the CPU stand-ins' parameter
counts: fmnist2_resnet9_tiny 472,622 and music21_music_tiny at its former d_model 128, 698,374) and k = 4096, on
the same dense float32 rows
[B, p], timed in interleaved rounds (A B C A B C ..., median): SJLT over all p coordinates; GraSS with k' in
{32768, 131072, 524288 where k' < p} (the fused C++ op: one pass over the k' kept columns); and, for the largest
k', the same map unfused (gather x[:, I] into a [B, k'] copy, then SJLT) to show what the fusion saves. Issue #17
asks the two-stage rows at k' = 131072 to be faster than SJLT alone; the small-scale grid's own compress_s numbers
come from runs that share the machine with training, so this side-by-side ratio is the one to quote.
"""

from __future__ import annotations

import benchlib

from grass.compress.grass_compressor import GraSS
from grass.compress.sjlt import SJLT

QUICK = benchlib.QUICK
DIMS = {"quick": 120_000} if QUICK else {"fmnist2_resnet9_tiny": 472_622, "music21_music_tiny_d128": 698_374}
K = 1024 if QUICK else 4096
K_PRIMES = (8192, 32768) if QUICK else (32768, 131072, 524288)
BATCH = 64 if QUICK else 500


def bench_dim(name: str, d: int) -> dict:
    x = benchlib.gradient_rows(BATCH, d)
    sjlt = SJLT(d, K, seed=0)
    fns = {"sjlt": lambda: sjlt(x)}
    kept = [kp for kp in K_PRIMES if kp < d]
    for kp in kept:
        grass = GraSS(d, K, seed=0, sparse_dim=kp)
        fns[f"grass_k'{kp}"] = (lambda g: lambda: g(x))(grass)
        if kp == kept[-1]:
            fns[f"grass_k'{kp}_unfused"] = (lambda g: lambda: g.unfused(x))(grass)
    timed = benchlib.time_interleaved(fns, benchlib.ROUNDS)
    base = timed["sjlt"]["ms"]
    for row in timed.values():
        if "ms" in row:
            row["vs_sjlt"] = row["ms"] / base
    return {"setting": name, "d": d, "k": K, "batch": BATCH, "kept_fraction": {kp: kp / d for kp in kept},
            "timings": timed}


def markdown(info: dict, cases: list[dict]) -> str:
    lines = [f"Two-stage GraSS vs SJLT alone, [B, p] float32 dense rows, k = {K}, interleaved rounds: "
             f"{benchlib.machine_line(info)}", "", "| setting (p) | method | ms (median) | CPU ms | x SJLT time |",
             "|---|---|---|---|---|"]
    for case in cases:
        for method, row in case["timings"].items():
            if "ms" not in row:
                lines.append(f"| {case['setting']} ({case['d']:,}) | {method} | not run: {row['not_run']} | | |")
                continue
            lines.append(f"| {case['setting']} ({case['d']:,}) | {method} | {row['ms']:.1f} | {row['cpu_ms']:.1f} | "
                         f"{row['vs_sjlt']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    info = benchlib.machine()
    cases = [bench_dim(name, d) for name, d in DIMS.items()]
    print(markdown(info, cases))
    benchlib.write_result("two_stage", {"machine": info, "cases": cases})


if __name__ == "__main__":
    main()
