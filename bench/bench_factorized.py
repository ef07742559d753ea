"""Factorized compression on GPT-2-small layer shapes: factgrass vs logra, the compressor call only.

Run: `.venv/bin/python bench/bench_factorized.py` (GRASS_BENCH_QUICK=1: seconds-long smoke sizes).
Writes factorized.json. Each layer shape (in -> out) gets random factors a [B, T, I'] (I' = in + 1 with
the bias column of ones; lm_head has no bias) and delta [B, T, O], and both methods are built from
their config nodes (conf/compressor/{logra,factgrass}.yaml) by build_factorized, exactly as the pipeline
builds them, at per-layer K in {256, 1024, 4096}. Timed: FactorizedCompressor(a, delta), median of up to
5 calls after a warm-up, both methods on the same tensors in the same process.
Reported: logra ms / factgrass ms per shape and K, the same ratio of the times summed over the 5 shapes,
and summed over GPT-2 small's 49 linear layers (12 of each block shape + lm_head).
"""

from __future__ import annotations

import sys
from pathlib import Path

import benchlib
import torch
from omegaconf import OmegaConf

from grass.compress.factorized import build_factorized

QUICK = benchlib.QUICK
BATCH, TOKENS = (2, 32) if QUICK else (4, 512)
KS = (256, 1024, 4096)
METHODS = ("logra", "factgrass")
# (name, in, out, bias, copies in GPT-2 small)
SHAPES = (("attn.c_attn", 768, 2304, True, 12), ("attn.c_proj", 768, 768, True, 12),
          ("mlp.c_fc", 768, 3072, True, 12), ("mlp.c_proj", 3072, 768, True, 12),
          ("lm_head", 768, 50257, False, 1))
CONF = Path(__file__).resolve().parents[1] / "conf" / "compressor"


def factors(in_features: int, out_features: int, bias: bool, batch: int = BATCH, tokens: int = TOKENS,
            device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(batch, tokens, in_features + int(bias), generator=g)
    if bias:
        a[..., -1] = 1.0  # the bias column LinearCapture appends
    delta = torch.randn(batch, tokens, out_features, generator=g)
    return a.to(device), delta.to(device)


def bench_shape(name: str, in_features: int, out_features: int, bias: bool, batch: int = BATCH,
                tokens: int = TOKENS, device: str | torch.device = "cpu") -> list[dict]:
    """logra and factgrass on one layer shape at every K, on `device` (factors made there, GPU work synced)."""
    a, delta = factors(in_features, out_features, bias, batch, tokens, device)
    sync = benchlib.device_sync(device)
    nodes = {m: OmegaConf.load(CONF / f"{m}.yaml") for m in METHODS}
    rows = []
    for k in KS:
        row = {"layer": name, "in": in_features, "out": out_features, "bias": bias, "K": k}
        for m in METHODS:
            comp = build_factorized(nodes[m], in_dim=a.shape[2], out_dim=out_features, proj_dim=k, seed=0,
                                    layer_name=name)
            out = comp(a, delta)
            assert out.shape == (batch, comp.feature_dim), out.shape
            timing = benchlib.time_call(lambda comp=comp: comp(a, delta), sync=sync)
            row[m] = {**timing, "k_in": comp.k_in, "k_out": comp.k_out, "feature_dim": comp.feature_dim}
        row["logra_over_factgrass"] = row["logra"]["ms"] / row["factgrass"]["ms"]
        print(f"  {name} {in_features}->{out_features} K={k}: logra {row['logra']['ms']:.1f} ms, "
              f"factgrass {row['factgrass']['ms']:.1f} ms", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def totals(rows: list[dict]) -> dict:
    """Per K: summed ms of each method over the 5 shapes and over GPT-2 small's 49 layers, and the ratios."""
    copies = {s[0]: s[4] for s in SHAPES}
    out = {}
    for k in KS:
        sel = [r for r in rows if r["K"] == k]
        t = {f"{m}_ms_5_shapes": sum(r[m]["ms"] for r in sel) for m in METHODS}
        t.update({f"{m}_ms_gpt2_small": sum(copies[r["layer"]] * r[m]["ms"] for r in sel) for m in METHODS})
        t["ratio_5_shapes"] = t["logra_ms_5_shapes"] / t["factgrass_ms_5_shapes"]
        t["ratio_gpt2_small"] = t["logra_ms_gpt2_small"] / t["factgrass_ms_gpt2_small"]
        out[str(k)] = t
    return out


def markdown(info: dict, rows: list[dict], tot: dict) -> str:
    lines = [f"Factorized compressor call, B={BATCH}, T={TOKENS}, fp32; {benchlib.machine_line(info)}"
             + (" (QUICK sizes)" if QUICK else ""), "",
             "| layer | in -> out | K | logra sides | factgrass sides | logra ms | factgrass ms | logra / factgrass |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, fg = r["logra"], r["factgrass"]
        lines.append(f"| {r['layer']} | {r['in']} -> {r['out']} | {r['K']} | {lo['k_out']}x{lo['k_in']} | "
                     f"{fg['k_out']}x{fg['k_in']} -> {fg['feature_dim']} | {lo['ms']:.1f} | {fg['ms']:.1f} | "
                     f"{r['logra_over_factgrass']:.2f}x |")
    lines += ["", "| K | logra ms (5 shapes) | factgrass ms (5 shapes) | ratio | ratio over GPT-2 small's 49 layers |",
              "|---|---|---|---|---|"]
    for k, t in tot.items():
        lines.append(f"| {k} | {t['logra_ms_5_shapes']:.1f} | {t['factgrass_ms_5_shapes']:.1f} | "
                     f"{t['ratio_5_shapes']:.2f}x | {t['ratio_gpt2_small']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    info = benchlib.machine()
    rows = [r for name, i, o, bias, _ in SHAPES for r in bench_shape(name, i, o, bias)]
    tot = totals(rows)
    print(markdown(info, rows, tot))
    benchlib.write_result("factorized", {
        "machine": info, "config": {"batch": BATCH, "tokens": TOKENS, "ks": KS,
                                    "shapes": [dict(zip(("layer", "in", "out", "bias", "copies"), s)) for s in SHAPES],
                                    "measure_budget_s": benchlib.MEASURE_S},
        "rows": rows, "totals": tot})


if __name__ == "__main__":
    main()
