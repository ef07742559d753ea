"""bench/results/*.json -> bench/results/SUMMARY.md: one section per benchmark and the issue's targets.

Run: `.venv/bin/python bench/summary.py` after the benchmarks (GRASS_BENCH_QUICK=1 reads and writes the
quick-mode temp folder instead; GRASS_BENCH_RESULTS=DIR any folder). Each target is PASS, FAIL or
NOT MEASURED, with the numbers it was judged on; a quick-mode result never passes or fails a target,
because its sizes are not the target's.
"""

from __future__ import annotations

import json
from pathlib import Path

import benchlib
from summary_costs import section_bergson, section_cost_curves, section_end_to_end

TARGET_D, TARGET_K = 1_000_000, 4096


def load(folder: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"skipping {path}: {err}")
            continue
        out[data.get("benchmark", path.stem)] = data
    return out


def verdict(measured: list[bool], missing: list[str]) -> str:
    if measured and not all(measured):
        return "FAIL"
    if missing or not measured:
        return "NOT MEASURED"
    return "PASS"


def _full(res: dict, name: str) -> tuple[dict | None, str | None]:
    data = res.get(name)
    if data is None:
        return None, f"no {name}.json"
    if data.get("quick"):
        return None, f"{name}.json is a quick-mode run (sizes differ from the target's)"
    return data, None


def target_sjlt_vs_dattri(res: dict) -> tuple[str, str]:
    data, why = _full(res, "flat_peers")
    if data is None:
        return "NOT MEASURED", why
    checks, notes = [], []
    for c in data["cells"]:
        if c["d"] == TARGET_D and c["k"] == TARGET_K:
            s = c["speedups"].get("sjlt/dattri_normal")
            if s is None:
                notes.append(f"zeros {c['zero_frac']:.0%}: not measured ({c['results']['dattri_normal']})")
                continue
            checks.append(s["speedup"] >= 20)
            flag = " (dattri timed on the dense input)" if s.get("peer_timed_on_dense_input") else ""
            notes.append(f"zeros {c['zero_frac']:.0%}: {s['speedup']:.1f}x (SJLT {c['results']['sjlt']['ms']:.1f} ms)"
                         + flag)
    missing = [] if checks else [f"no d={TARGET_D:.0e}, k={TARGET_K} cell"]
    return verdict(checks, missing), "; ".join(notes) or missing[0]


def target_sjlt_bandwidth(res: dict) -> tuple[str, str]:
    data, why = _full(res, "flat_peers")
    if data is None:
        return "NOT MEASURED", why
    cells = [c for c in data["cells"] if c["d"] == TARGET_D and "sjlt_copy_fraction" in c]
    if not cells:
        return "NOT MEASURED", f"no d={TARGET_D:.0e} cell with an SJLT time"
    worst = min(cells, key=lambda c: c["sjlt_copy_fraction"])
    best = max(cells, key=lambda c: c["sjlt_copy_fraction"])
    text = (f"at d={TARGET_D:.0e} over all k and both inputs: lowest {worst['sjlt_copy_fraction']:.0%} "
            f"(k={worst['k']}, zeros {worst['zero_frac']:.0%}: SJLT reads {worst['sjlt_read_gb_s']:.2f} GB/s, "
            f"copy moves {worst['copy_gb_s']:.2f} GB/s read+write), highest {best['sjlt_copy_fraction']:.0%} "
            f"(k={best['k']}, zeros {best['zero_frac']:.0%})")
    return verdict([worst["sjlt_copy_fraction"] >= 0.25], []), text


def target_factgrass_vs_logra(res: dict) -> tuple[str, str]:
    data, why = _full(res, "factorized")
    if data is None:
        return "NOT MEASURED", why
    t = data["totals"].get(str(TARGET_K))
    if t is None:
        return "NOT MEASURED", f"no K={TARGET_K} rows"
    per_shape = ", ".join(f"{r['layer']} {r['logra_over_factgrass']:.1f}x" for r in data["rows"] if r["K"] == TARGET_K)
    text = (f"logra / factgrass summed over the 5 shapes {t['ratio_5_shapes']:.2f}x "
            f"({t['logra_ms_5_shapes']:.0f} vs {t['factgrass_ms_5_shapes']:.0f} ms); over GPT-2 small's 49 layers "
            f"{t['ratio_gpt2_small']:.2f}x; per shape: {per_shape}")
    return verdict([t["ratio_5_shapes"] >= 3], []), text


def target_caching(res: dict) -> tuple[str, str]:
    data, why = _full(res, "caching")
    if data is None:
        return "NOT MEASURED", why
    row = next((r for r in data["rows"] if r["model"] == "gpt2_small_shaped"), None)
    if row is None or row.get("note"):
        return "NOT MEASURED", "no full GPT-2-small-shaped row" + (f" ({row['note']})" if row else "")
    modes, checks, missing, notes = row["modes"], [], [], []
    base, fg = modes.get("fwd_bwd_outputs", {}), modes.get("factgrass", {})
    if "tokens_per_s" in base and "tokens_per_s" in fg:
        frac = fg["tokens_per_s"] / base["tokens_per_s"]
        checks.append(frac >= 0.85)
        notes.append(f"factgrass {fg['tokens_per_s']:.0f} tokens/s = {frac:.0%} of forward+backward-only "
                     f"{base['tokens_per_s']:.0f} tokens/s")
        if "compress_share_in_call" in fg:
            notes.append(f"inside each factgrass call the compressors took {fg['compress_share_in_call']:.1%} of "
                         f"its time (drift-free overhead measure)")
    else:
        missing.append("factgrass or forward+backward-only not measured")
    peer = modes.get("dattri_factgrass", {})
    if "tokens_per_s" in peer and "tokens_per_s" in fg:
        checks.append(fg["tokens_per_s"] > peer["tokens_per_s"])
        notes.append(f"dattri FactGraSS {peer['tokens_per_s']:.0f} tokens/s "
                     f"(ours {fg['tokens_per_s'] / peer['tokens_per_s']:.2f}x)")
    else:
        missing.append(f"dattri FactGraSS not run: {peer.get('not_run', 'no result')}")
        notes.append(missing[-1])
    other = modes.get("dattri_logra", {})
    if "tokens_per_s" in other:
        notes.append(f"(dattri LoGra {other['tokens_per_s']:.0f} tokens/s, not part of the target)")
    return verdict(checks, missing), "; ".join(notes)


TARGETS = (
    (f"SJLT at k={TARGET_K}, d=1e6 at least 20x faster than dattri's Gaussian CPU projector", target_sjlt_vs_dattri),
    ("SJLT at least 25% of copy bandwidth", target_sjlt_bandwidth),
    (f"factgrass at least 3x faster than logra at K={TARGET_K} on GPT-2-small shapes", target_factgrass_vs_logra),
    ("factgrass caching throughput >= 85% of forward+backward-only on the GPT-2-small-shaped model, "
     "and above dattri's", target_caching),
)


def section_flat(data: dict) -> list[str]:
    lines = ["| d | k | zeros | SJLT ms | dattri normal ms | TRAK rademacher ms | SJLT vs dattri | SJLT / copy bw |",
             "|---|---|---|---|---|---|---|---|"]
    for c in data["cells"]:
        r = c["results"]
        names = ("sjlt", "dattri_normal", "trak_rademacher")
        ms = [f"{r[n]['ms']:.1f}" if "ms" in r.get(n, {}) else "-" for n in names]
        s = c["speedups"].get("sjlt/dattri_normal")
        sp = f"{s['speedup']:.1f}x{'*' if s.get('peer_timed_on_dense_input') else ''}" if s else "-"
        frac = f"{c['sjlt_copy_fraction']:.0%}" if "sjlt_copy_fraction" in c else "-"
        lines.append(f"| {c['d']:.0e} | {c['k']} | {c['zero_frac']:.0%} | " + " | ".join(ms) + f" | {sp} | {frac} |")
    lines.append(
        "\n\\* dattri timed on the dense input (it redraws its matrix every call, so its cost ignores zeros). "
        "All methods and ratios: flat_peers.json."
    )
    return lines


def section_factorized(data: dict) -> list[str]:
    lines = [
        "| K | logra ms (5 shapes) | factgrass ms (5 shapes) | logra / factgrass | over GPT-2 small's 49 layers |",
        "|---|---|---|---|---|",
    ]
    for k, t in data["totals"].items():
        lines.append(
            f"| {k} | {t['logra_ms_5_shapes']:.1f} | {t['factgrass_ms_5_shapes']:.1f} | "
            f"{t['ratio_5_shapes']:.2f}x | {t['ratio_gpt2_small']:.2f}x |"
        )
    cfg = data.get("config", {})
    lines.append(f"\nB={cfg.get('batch')}, T={cfg.get('tokens')}; per-shape rows in factorized.json.")
    return lines


def section_caching(data: dict) -> list[str]:
    lines = [
        "| model | batch | mode | tokens/s | vs forward+backward-only | compressors' share of the call |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        for mode, r in row["modes"].items():
            frac = row.get("fraction_of_fwd_bwd_outputs", {}).get(mode)
            value = f"{r['tokens_per_s']:.0f}" if "tokens_per_s" in r else f"not run: {r['not_run'][:100]}"
            share = f"{r['compress_share_in_call']:.1%}" if "compress_share_in_call" in r else "-"
            lines.append(
                f"| {row['model']} ({row['layers']} linear layers) | {row['blocks']}x{row['block']} | {mode} | "
                f"{value} | {'-' if frac is None else f'{frac:.0%}'} | {share} |"
            )
        if row.get("note"):
            lines.append(f"\n{row['model']}: {row['note']}\n")
    return lines


def section_sjlt_kernels(data: dict) -> list[str]:
    lines = ["| d | zeros | cpp ms | clone ms | cpp / clone |", "|---|---|---|---|---|"]
    for r in data.get("rows", []):
        lines.append(
            f"| {r['d']:.0e} | {r['zero_frac']:.0%} | {r['cpp_ms']:.1f} | {r['clone_ms']:.1f} | "
            f"{r['cpp_over_clone']:.2f} |"
        )
    return lines


def section_gpu(data: dict) -> list[str]:
    if data.get("device") is None:
        return [f"Not run: {data.get('not_run', 'no device')}."]
    dev = data["device"]
    extra = ", ".join(f"{key} {dev[key]}" for key in ("capability", "cuda", "triton") if dev.get(key) is not None)
    lines = [
        f"Device: {dev['name']}" + (f" ({extra})" if extra else ""),
        "",
        "| d | k | zeros | path | kernel ms | reference ms | kernel / reference | kernel / copy bw | max diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["sjlt"]:
        lines.append(
            f"| {r['d']:.0e} | {r['k']} | {r['zero_frac']:.0%} | {r['kernel_path']} | {r['kernel']['ms']:.2f} | "
            f"{r['reference']['ms']:.2f} | {r['kernel_over_reference']:.1f}x | {r['kernel_copy_fraction']:.0%} | "
            f"{r['max_abs_diff']:.1e} |"
        )
    lines += ["", "| K | logra ms | factgrass ms | logra / factgrass |", "|---|---|---|---|"]
    for k, t in data["factorized"]["totals"].items():
        lines.append(
            f"| {k} | {t['logra_ms_5_shapes']:.2f} | {t['factgrass_ms_5_shapes']:.2f} | {t['ratio_5_shapes']:.2f}x |"
        )
    cfg = data.get("config", {})
    lines.append(
        f"\nFactorized: shapes {', '.join(cfg.get('factorized_shapes', []))}, B={cfg.get('factorized_batch')}, "
        f"T={cfg.get('factorized_tokens')}."
    )
    return lines


SECTIONS = {
    "flat_peers": ("Flat compressors vs dattri / TRAK CPU projectors", section_flat),
    "factorized": ("Factorized compressors on GPT-2-small layer shapes", section_factorized),
    "caching": ("End-to-end gradient caching throughput", section_caching),
    "sjlt_kernels": ("SJLT CPU kernels (bench/bench_sjlt_kernels.py)", section_sjlt_kernels),
    "gpu": ("GPU: SJLT kernel vs reference, factgrass vs logra (bench/bench_gpu.py)", section_gpu),
    "end_to_end": ("End to end: the default experiment and where its time goes (bench/bench_end_to_end.py)",
                   section_end_to_end),
    "cost_curves": ("Cost curves: attribute vs n and k, pipeline=store vs train blocks (bench/bench_cost_curves.py)",
                    section_cost_curves),
    "bergson": ("Caching tokens/s on one model and the same blocks: grass vs bergson vs dattri "
                "(bench/bench_bergson.py)", section_bergson),
}


def render(res: dict) -> str:
    lines = [
        "# Benchmark summary",
        "",
        f"Generated by bench/summary.py from {', '.join(f'{n}.json' for n in res)}.",
        "",
        "## Targets",
        "",
    ]
    for text, check in TARGETS:
        status, detail = check(res)
        lines.append(f"- **{status}**: {text}. {detail}")
    order = [n for n in SECTIONS if n in res] + [n for n in res if n not in SECTIONS]
    for name in order:
        data = res[name]
        title, body = SECTIONS.get(name, (name, lambda d: []))
        lines += [
            "",
            f"## {title}",
            "",
            f"Machine: {benchlib.machine_line(data.get('machine', {}))}"
            + (" (QUICK sizes)" if data.get("quick") else ""),
            "",
        ]
        if data.get("versions"):
            lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()), ""]
        try:
            lines += body(data)
        except (KeyError, TypeError) as err:  # an older or partial JSON: say so rather than crash
            lines.append(f"(could not tabulate: {type(err).__name__}: {err})")
    return "\n".join(lines) + "\n"


def main() -> None:
    folder = benchlib.results_dir()
    res = load(folder)
    if not res:
        raise SystemExit(f"no results in {folder}; run the bench/bench_*.py scripts first")
    text = render(res)
    out = folder / "SUMMARY.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
