"""Paired comparisons on the same queries: SJLT minus each other method at each k, as the mean per-query LDS
difference with a percentile bootstrap interval over queries.

Two runs' own intervals both carry the spread of the LDS across queries, so they overlap long before the runs'
difference is uncertain; a per-query difference cancels that spread (the paper's claim "SJLT above random mask" is
a claim about such a difference). Runs scored before `lds/per_query` existed, or on other queries, are left out.
"""

from __future__ import annotations

import math

import torch

from grass.lds.metric import bootstrap_ci

REFERENCE = "sjlt"


def paired_difference(a: dict, b: dict, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float, int] | None:
    """(mean, ci_low, ci_high, n) of run a's per-query LDS minus run b's over the queries both define (95 %
    percentile bootstrap over queries); None when either lacks `_per_query` or they were scored on other queries."""
    if a.get("_per_query") is None or b.get("_per_query") is None or a.get("_queries") != b.get("_queries"):
        return None
    diff = torch.tensor([x - y for x, y in zip(a["_per_query"], b["_per_query"], strict=True)
                         if x is not None and y is not None], dtype=torch.float64)
    if len(diff) == 0:
        return None
    low, high = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
    return float(diff.mean()), low, high, len(diff)


def paired_table(cells: dict[tuple[str, int], dict], methods: list[str], ks: list[int]) -> list[str]:
    """Markdown lines: one row per method other than SJLT, `sjlt - method` per k; [] when no pair is comparable.
    cells: (method, k) -> the table's row of that cell (with `_per_query` and `_queries`)."""
    rows = []
    for method in methods:
        if method == REFERENCE:
            continue
        out = []
        for k in ks:
            ref, other = cells.get((REFERENCE, k)), cells.get((method, k))
            d = paired_difference(ref, other) if ref and other else None
            out.append("-" if d is None or math.isnan(d[1]) else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
        if any(c != "-" for c in out):
            rows.append(f"| {REFERENCE} - {method} | " + " | ".join(out) + " |")
    if not rows:
        return []
    return ["", f"Paired on the same queries: {REFERENCE} minus each method, mean per-query LDS difference [95 % "
            "bootstrap CI over queries]; an interval above 0 means SJLT attributes better on these queries.", "",
            "| pair | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)] + rows
