"""Collect run metrics under outputs/<experiment>/ into a method x k table (markdown + CSV) and two plots:
LDS vs time (lds_vs_time.png) and the paper's small-scale bars (lds_time_bars.png, grass.report.bars).
build_combined puts several experiments (the three small settings) into one table and one figure.
"""

import csv
import io
import json
import logging
from pathlib import Path

from grass.errors import GrassError
from grass.io import atomic_write_bytes
from grass.report.bars import bar_figure, method_key
from grass.report.paired import paired_table
from grass.report.reference import PAPER_NOTES, PAPER_SETUP, paper_number

log = logging.getLogger(__name__)


def collect(experiment_dir: Path) -> list[dict]:
    """Every finished run under experiment_dir (one metrics.json per run folder, i.e. per configuration)."""
    if not experiment_dir.is_dir():
        raise GrassError(f"no runs under {experiment_dir}; run `python run.py experiment=...` first")
    runs = []
    for path in sorted(experiment_dir.rglob("metrics.json")):
        m = json.loads(path.read_text())
        if m.get("lds/mean") is None:
            continue
        runs.append({**m, "run/folder": str(path.parent.relative_to(experiment_dir))})
    return sorted(runs, key=lambda m: (m["run/tda"], m["run/compressor"], m["run/proj_dim"], m["run/seed"]))


def method_label(compressor: str, sparse_dim: int | None) -> str:
    """The table's method: the compressor name, with k' for a two-stage run ("grass k'=32768")."""
    return compressor if sparse_dim is None else f"{compressor} k'={int(sparse_dim)}"


def rows_for_table(runs: list[dict], experiment: str) -> list[dict]:
    rows = []
    for m in runs:
        k_prime = m.get("run/sparse_dim")
        paper = paper_number(experiment, m["run/compressor"], m["run/proj_dim"], k_prime)
        rows.append({
            "method": method_label(m["run/compressor"], k_prime), "k": m["run/proj_dim"], "tda": m["run/tda"],
            "seed": m["run/seed"], "sparse_dim": k_prime,
            "lds": m["lds/mean"], "ci_low": m["lds/ci_low"], "ci_high": m["lds/ci_high"],
            "compress_s": m.get("time/compress_s", float("nan")), "damping": m.get("damping/chosen"),
            "paper_lds": paper[0] if paper else None, "paper_s": paper[1] if paper else None,
            "machine": m.get("run/machine", ""),
            "checkpoints": m.get("run/num_checkpoints", len(m.get("compress/sketch_seeds", []))),
            "run": m["run/folder"], "started": m.get("run/started", ""),
            # for paired comparisons (grass.report.paired); not written to table.csv
            "_per_query": m.get("lds/per_query"), "_queries": m.get("lds/queries"),
        })
    return rows


def markdown(rows: list[dict], experiment: str) -> str:
    """One method x k table per tda. A cell that several configurations share (another seed, damping grid,
    compressor option, ...) shows the newest of them and is listed under the table; table.csv has every run."""
    lines = [f"## {experiment}: LDS and compression time (ours vs the paper)"]
    for tda in sorted({r["tda"] for r in rows}):
        lines += ["", f"### tda={tda}", ""] + _table([r for r in rows if r["tda"] == tda])
    methods = {r["method"] for r in rows}
    machines = sorted({r["machine"] for r in rows if r["machine"]})
    checkpoints = sorted({r["checkpoints"] for r in rows})
    tdas = sorted({r["tda"] for r in rows})
    setup = PAPER_SETUP.get(experiment)
    lines += ["", f"Ours: {', '.join(tdas)} averaged over {', '.join(map(str, checkpoints))} checkpoint(s)"
              + (f" ({setup})." if setup else ".")]
    lines += [f"Our times: seconds in the compressor over the train set, all checkpoints, on {', '.join(machines)}.",
              "Paper times: the authors' GPU; compare ratios between methods, not absolute seconds."]
    lines += [f"- {m}: {note}" for m, note in PAPER_NOTES.items() if m in methods]
    return "\n".join(lines) + "\n"


def runs_per_cell(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(tda, method, k) -> the rows of that cell, oldest first."""
    cells: dict[tuple, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["started"]):
        cells.setdefault((r["tda"], r["method"], r["k"]), []).append(r)
    return cells


def newest_per_cell(rows: list[dict]) -> dict[tuple, dict]:
    return {key: runs[-1] for key, runs in runs_per_cell(rows).items()}


def _table(rows: list[dict]) -> list[str]:
    """The markdown lines of one tda's method x k table, then a line per cell shared by several runs."""
    ks = sorted({r["k"] for r in rows})
    cells = {(method, k): runs for (_, method, k), runs in runs_per_cell(rows).items()}
    lines = ["| method | " + " | ".join(f"k={k} ours: LDS [95% CI] / s | k={k} paper" for k in ks) + " |",
             "|---|" + "---|---|" * len(ks)]
    for method in sorted({r["method"] for r in rows}, key=method_key):
        out = []
        for k in ks:
            r = cells.get((method, k), [None])[-1]
            ours = f"{r['lds']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] / {r['compress_s']:.2f}" if r else "-"
            paper = f"{r['paper_lds']:.3f} / {r['paper_s']:.2f}" if r and r["paper_lds"] is not None else "-"
            out += [ours, paper]
        lines.append(f"| {method} | " + " | ".join(out) + " |")
    shared = {key: runs for key, runs in cells.items() if len(runs) > 1}
    for (method, k), runs in sorted(shared.items()):
        log.warning("report: %d configurations of %s k=%s; the table shows the newest, table.csv lists all",
                    len(runs), method, k)
        lines.append(f"- {method} k={k}: {len(runs)} configurations, shown: {runs[-1]['run']}; also "
                     + ", ".join(f"{r['run']} ({r['lds']:.3f})" for r in runs[:-1]))
    # a cell holding several configurations (another tda.train_output, seed, ...) is not paired: its newest run
    # and the other method's run may differ in more than the compressor
    single = {key: runs[-1] for key, runs in cells.items() if len(runs) == 1}
    paired = paired_table(single, sorted({r["method"] for r in rows}, key=method_key), ks)
    if paired and shared:
        paired.append("- cells with several configurations (listed above) are not paired")
    return lines + paired


def write_csv(rows: list[dict], path: Path) -> None:
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]  # per-query lists stay out
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(buffer.getvalue().encode(), path)


def plot(rows: list[dict], path: Path, experiment: str) -> None:
    """LDS against compression time, one line per method across k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    shown = newest_per_cell(rows)
    several_tda = len({tda for tda, _, _ in shown}) > 1
    for tda, method in sorted({(tda, method) for tda, method, _ in shown}):
        pts = sorted((r for (t, m, _), r in shown.items() if (t, m) == (tda, method)), key=lambda r: r["k"])
        xs, ys = [r["compress_s"] for r in pts], [r["lds"] for r in pts]
        err = [[r["lds"] - r["ci_low"] for r in pts], [r["ci_high"] - r["lds"] for r in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{method} ({tda})" if several_tda else method)
        for r in pts:
            ax.annotate(
                f"k={r['k']}", (r["compress_s"], r["lds"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xscale("log")
    ax.set_xlabel("compression time over the train set (s, log scale)")
    ax.set_ylabel("LDS (95% bootstrap CI)")
    ax.set_title(f"{experiment}: attribution quality vs compression cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def experiment_rows(root: Path, experiment: str) -> list[dict]:
    """The table rows of every finished run under <root>/<experiment>/; GrassError when there are none."""
    runs = collect(root / experiment)
    if not runs:
        raise GrassError(f"no finished runs (metrics.json with lds/mean) under {root / experiment}")
    return rows_for_table(runs, experiment)


def build_report(root: Path, experiment: str) -> str:
    """Writes table.md, table.csv, lds_vs_time.png and lds_time_bars.png under <root>/<experiment>/report/;
    returns the markdown."""
    rows = experiment_rows(root, experiment)
    out = root / experiment / "report"
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, experiment)
    atomic_write_bytes(text.encode(), out / "table.md")
    write_csv(rows, out / "table.csv")
    plot(rows, out / "lds_vs_time.png", experiment)
    bar_figure([(experiment, rows)], out / "lds_time_bars.png")
    log.info("report written to %s", out)
    return text


def build_combined(root: Path, name: str, experiments: list[str]) -> str:
    """One table and one figure over several experiments (the paper's small-scale figure: all three settings).

    Writes <root>/<name>/report/{table.md, table.csv (an `experiment` column added), lds_time_bars.png (one
    column per experiment)}; every experiment must have finished runs (GrassError naming the first without).
    Returns the markdown: each experiment's section, in the order given.
    """
    if not experiments:
        raise GrassError("report: combine=[] names no experiments to combine")
    per = [(experiment, experiment_rows(root, experiment)) for experiment in experiments]
    out = root / name / "report"
    out.mkdir(parents=True, exist_ok=True)
    text = f"# {name}: {', '.join(experiments)}\n\n" + "\n".join(markdown(rows, e) for e, rows in per)
    atomic_write_bytes(text.encode(), out / "table.md")
    write_csv([{"experiment": e, **r} for e, rows in per for r in rows], out / "table.csv")
    bar_figure(per, out / "lds_time_bars.png")
    log.info("combined report written to %s", out)
    return text
