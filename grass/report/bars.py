"""The paper's small-scale figure: bars of LDS and of compression time per method and k, ours beside the paper's.

One column of two panels per setting (experiment): LDS (ours with the 95 % bootstrap CI, the paper's hatched
beside it) and compression time. The paper's times were measured on the authors' GPU, so the time panel shows
every time as a ratio to SJLT at the same k (ours to ours, the paper's to the paper's); a k without an SJLT run
has no time bars, and the panel says so. Input rows are grass.report.table's (`method`, `k`, `lds`, `ci_low`,
`ci_high`, `compress_s`, `paper_lds`, `paper_s`, `tda`, `started`).
"""

from __future__ import annotations

from pathlib import Path

from grass.report.reference import TINY_OF

METHOD_ORDER = ("random_mask", "selective_mask", "sjlt", "fjlt", "gaussian", "rademacher", "grass", "grass_sm")
REFERENCE_METHOD = "sjlt"
NAN = float("nan")


def _or_nan(value) -> float:
    return NAN if value is None else value


def method_key(method: str) -> tuple:
    """Sort key: the paper's row order, then two-stage rows by k' ("grass k'=32768" < "grass k'=131072")."""
    name, _, k_prime = method.partition(" k'=")
    rank = METHOD_ORDER.index(name) if name in METHOD_ORDER else len(METHOD_ORDER)
    return (bool(k_prime), int(k_prime or 0), rank, name)


def shown_rows(rows: list[dict]) -> list[dict]:
    """The newest run of each (method, k) for the tda with the most runs (the figure shows one tda)."""
    tdas = [r["tda"] for r in rows]
    tda = max(sorted(set(tdas)), key=tdas.count)
    cells = {}
    for r in sorted((r for r in rows if r["tda"] == tda), key=lambda r: r["started"]):
        cells[(r["method"], r["k"])] = r
    return list(cells.values())


def time_ratios(rows: list[dict]) -> dict[tuple, tuple]:
    """(method, k) -> (our time / our SJLT time, the paper's / the paper's SJLT) at the same k; None where the
    SJLT cell or the number is missing."""
    ref = {r["k"]: r for r in rows if r["method"] == REFERENCE_METHOD}
    out = {}
    for r in rows:
        base = ref.get(r["k"])
        ours = r["compress_s"] / base["compress_s"] if base and base["compress_s"] else None
        paper = (r["paper_s"] / base["paper_s"] if base and r["paper_s"] is not None and base["paper_s"]
                 else None)
        out[(r["method"], r["k"])] = (ours, paper)
    return out


def bar_figure(settings: list[tuple[str, list[dict]]], path: Path) -> None:
    """Write the figure for [(experiment, rows), ...] (one column each) to path (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(settings), figsize=(7.5 * len(settings), 8), squeeze=False)
    for col, (experiment, rows) in enumerate(settings):
        _panels(axes[0][col], axes[1][col], experiment, shown_rows(rows))
    fig.suptitle("LDS and compression time per method and k: ours (solid) beside the paper's (hatched)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panels(ax_lds, ax_time, experiment: str, rows: list[dict]) -> None:
    methods = sorted({r["method"] for r in rows}, key=method_key)
    ks = sorted({r["k"] for r in rows})
    cell = {(r["method"], r["k"]): r for r in rows}
    ratios = time_ratios(rows)
    width = 0.8 / (2 * len(ks))
    colors = [f"C{i}" for i in range(len(ks))]
    missing_ref = [k for k in ks if (REFERENCE_METHOD, k) not in cell]
    for j, k in enumerate(ks):
        xs = [i + (2 * j - len(ks)) * width + width / 2 for i in range(len(methods))]
        ours = [cell.get((m, k)) for m in methods]
        lds = [r["lds"] if r else NAN for r in ours]  # NaN: no bar (no run, or the paper has no such cell)
        err = [[r["lds"] - r["ci_low"] if r else 0.0 for r in ours],
               [r["ci_high"] - r["lds"] if r else 0.0 for r in ours]]
        ax_lds.bar(xs, lds, width, yerr=err, capsize=2, color=colors[j], label=f"k={k} ours")
        paper = [r["paper_lds"] if r and r["paper_lds"] is not None else NAN for r in ours]
        ax_lds.bar([x + width for x in xs], paper, width, color=colors[j], alpha=0.35, hatch="//",
                   label=f"k={k} paper")
        t_ours = [_or_nan(ratios.get((m, k), (None, None))[0]) for m in methods]
        t_paper = [_or_nan(ratios.get((m, k), (None, None))[1]) for m in methods]
        ax_time.bar(xs, t_ours, width, color=colors[j], label=f"k={k} ours")
        ax_time.bar([x + width for x in xs], t_paper, width, color=colors[j], alpha=0.35, hatch="//",
                    label=f"k={k} paper")
    for ax in (ax_lds, ax_time):
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    tda = rows[0]["tda"] if rows else ""
    paper = TINY_OF.get(experiment, experiment)
    ax_lds.set_title(f"{experiment} ({tda})" + (f"; hatched: the paper's {paper}" if paper != experiment else ""))
    ax_lds.set_ylabel("LDS (ours: 95% bootstrap CI)")
    top = max([r["ci_high"] for r in rows] + [r["paper_lds"] for r in rows if r["paper_lds"] is not None] + [0.0])
    ax_lds.set_ylim(top=1.35 * top if top > 0 else None)  # headroom for the legend above the bars
    ax_lds.legend(fontsize=7, ncol=3, loc="upper center")
    ax_time.set_yscale("log")
    ax_time.set_ylabel("compression time / SJLT's at the same k (log)")
    note = "times as ratios to SJLT at the same k: the paper's seconds are on the authors' GPU, ours on this machine"
    if missing_ref:
        note += f"; no SJLT run at k={', '.join(map(str, missing_ref))}: no time bars there"
    ax_time.set_title(note, fontsize=7)
