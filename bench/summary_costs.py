"""SUMMARY.md sections for end_to_end.json, cost_curves.json and bergson.json (bench/summary.py lists them).

Each takes the benchmark's JSON as written by bench/bench_end_to_end.py, bench/bench_cost_curves.py or
bench/bench_bergson.py and returns markdown lines; a missing key raises KeyError / TypeError, which
summary.render reports as "could not tabulate" instead of crashing.
"""

from __future__ import annotations


def _slope(fit: dict) -> str:
    if fit.get("slope") is None:
        return fit["growth"]
    segments = ", ".join(f"{x:.2f}" for x in fit.get("segment_slopes", []))
    return f"{fit['growth']} (log-log slope {fit['slope']:.2f}; between neighbouring points {segments})"


def section_end_to_end(data: dict) -> list[str]:
    lines = [f"`{data['command']}` from an empty paths.root: wall {data['wall_s']:.1f} s, CPU {data['cpu_s']:.1f} s, "
             f"peak RSS {data['peak_rss_mb']:.0f} MB; load average {data['load_before']:.1f} before, "
             f"{data['load_after']:.1f} after. Timed stages {data['timed_s']:.1f} s, untimed "
             f"{data['untimed_s']:.1f} s. "
             + (data.get("lds_line") or "").split("  ->")[0], "",
             "| part | s | share of wall | kind |", "|---|---|---|---|"]
    lines += [f"| {r['part']} | {r['s']:.2f} | {r['share']:.1%} | {r['kind']} |" for r in data["breakdown"]]
    lines.append("\n`timed`: logged by the run before the benchmark existed; `untimed`: start-up, data, ground "
                 "truth, LDS bootstrap and what the logged parts leave out (end_to_end.json has every time/ key).")
    return lines


def section_cost_curves(data: dict) -> list[str]:
    att, lines = data["attribute"], []
    for key, var in (("vs_n", "n"), ("vs_k", "k")):
        c = att[key]
        fixed = f"k={c['k']}" if key == "vs_n" else f"n={c['n']}"
        lines += [f"Attribute stage ({att['tda']}, one checkpoint, m={att['m']} queries, random features) vs {var} "
                  f"at {fixed}: time {_slope(c['time'])}, peak memory {_slope(c['memory'])}.", "",
                  f"| {var} | s | precondition s | damping grid s | scores s | peak MB |", "|---|---|---|---|---|---|"]
        for p in c["points"]:
            peak = "-" if p["peak_mb"] is None else f"{p['peak_mb']:.0f}"
            lines.append(f"| {p[var]} | {p['seconds']:.2f} | {p['precondition_s']:.2f} | {p['damping_grid_s']:.2f} | "
                         f"{p['scores_s']:.3f} | {peak} |")
        lines.append("")
    store = data["store"]
    if "points" not in store:
        return lines + [f"pipeline=store: not run ({store['not_run'][-300:]})"]
    stages = list(store["growth"])
    lines += [f"pipeline=store ({store['model']}, blocks of {store['block']} tokens, {store['queries']} queries) "
              "throughput vs train blocks; time growth per stage: "
              + ", ".join(f"{s} {_slope(store['growth'][s])}" for s in stages) + ".", "",
              "| blocks | " + " | ".join(f"{s} {store['points'][0]['stages'].get(s, {}).get('unit', '')}/s"
                                       for s in stages) + " |", "|---|" + "---|" * len(stages)]
    for p in store["points"]:
        vals = [p["stages"].get(s, {}).get("per_s") for s in stages]
        lines.append(f"| {p['blocks']} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in vals) + " |")
    if data.get("figure"):
        lines.append(f"\nFigure: {data['figure']} (beside this file).")
    return lines


def section_bergson(data: dict) -> list[str]:
    cfg, res, ratios = data["config"], data["results"], data.get("ratios", {})
    lines = [f"{cfg['model']}; {cfg['blocks']} blocks x {cfg['block']} tokens, {cfg['batch_blocks']} blocks per batch, "
             f"{cfg['threads']} threads, per module {cfg['side']} x {cfg['side']} = {cfg['per_layer_features']} "
             f"features; median over {cfg['rounds']} interleaved round(s).", "",
             "| peer | tokens/s | grass / peer | modules | what it captures |", "|---|---|---|---|---|"]
    what = {"grass": "decoder nn.Linear (as bergson), factgrass", "grass_lm_head": "every nn.Linear incl. lm_head",
            "bergson": "decoder nn.Linear (lm_head is outside its base_model), rademacher per side",
            "dattri_factgrass": "every nn.Linear incl. lm_head; CPU stage 2 dense normal",
            "dattri_logra": "every nn.Linear incl. lm_head"}
    for peer, r in res.items():
        if "tokens_per_s" not in r:
            lines.append(f"| {peer} | not run: {r.get('not_run', '')[-160:]} | - | - | {what.get(peer, '')} |")
            continue
        ratio = ratios.get(f"grass/{peer}")
        lines.append(f"| {peer} | {r['tokens_per_s']:.0f} | {'-' if ratio is None else f'{ratio:.2f}x'} | "
                     f"{r.get('modules') or '-'} | {what.get(peer, '')} |")
    return lines
