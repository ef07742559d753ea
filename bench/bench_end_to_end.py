"""End-to-end benchmark of the default experiment: wall time from outside, and where it goes, stage by stage.

Run: `.venv/bin/python bench/bench_end_to_end.py` (GRASS_BENCH_QUICK=1: experiment=tiny, ~10 s). Writes
end_to_end.json (bench/results/, or the quick temp folder). The run is `python run.py [overrides]` in a child
process under a fresh, empty paths.root (a temp folder removed afterwards), so every model is trained: the
figure a new user waits for after `make setup`. Full mode runs the default experiment (`python run.py`: MLP +
MNIST, SJLT k=4096, TRAK, 50 subset models); GRASS_BENCH_E2E_ARGS="key=value ..." adds overrides to either.

What is measured (seconds, one run; the machine's load is stated beside it, since a shared machine stretches
wall time):
  outside     wall clock of the child process, and its CPU time (user + system, all threads, from
              getrusage(RUSAGE_CHILDREN)) and peak resident memory (ru_maxrss).
  inside      the run's metrics.json: `time/run_s` (all of grass.pipeline.run), `time/load_s` (data, task,
              up-front checks), `time/stage/<name>_s` (each stage's wall, grass/lds_stages/run.py) and the
              finer keys the stages log (`time/finetune_s`, `time/grad_s`, `time/compress_{train,query}_s`,
              `time/precondition_s`, `time/damping_search_s`, `time/score_s`, ...).
The breakdown's rows partition the wall time: start-up and exit (interpreter, imports, Hydra: wall - run_s),
load, each stage (the attribute stage split into its logged parts plus the rest), and the in-run remainder.
Rows are marked `timed` (logged by the run before this benchmark existed: the issue's "timed stages") or
`untimed` (start-up, data, ground truth, LDS bootstrap, and what the logged parts leave out).
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

QUICK = benchlib.QUICK
REPO = Path(__file__).resolve().parents[1]
OVERRIDES = (["experiment=tiny"] if QUICK else []) + shlex.split(os.environ.get("GRASS_BENCH_E2E_ARGS", ""))
ENV = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# sub-steps of the attribute stage that the run logged before this benchmark; linear capture's compress_* keys
# are inside its capture_* keys, so they are listed under it rather than added
ATTRIBUTE_PARTS = ("grad_s", "capture_train_s", "capture_query_s", "compress_train_s", "compress_query_s",
                   "precondition_s", "damping_search_s", "score_s")
STAGE_ORDER = ("finetune", "selective_mask", "groundtruth", "attribute", "lds")  # grass/lds_stages/run.py's order
TIMED_BEFORE = {"finetune", "selective_mask"}  # stages whose whole time was logged before (time/finetune_s, ...)


def run_child(root: Path) -> dict:
    """Runs run.py once; {"wall_s", "cpu_s", "peak_rss_mb", "metrics", "tail"}; SystemExit when it fails."""
    cmd = [sys.executable, "run.py", *OVERRIDES, f"paths.root={root}"]
    print("running: " + " ".join(cmd), file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **ENV, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tail = (proc.stdout + proc.stderr)[-2000:]
    if proc.returncode != 0:
        raise SystemExit(f"run.py failed (exit {proc.returncode}):\n{tail}")
    found = sorted(root.rglob("metrics.json"))
    if len(found) != 1:
        raise SystemExit(f"expected one metrics.json under {root}, found {len(found)}")
    return {"command": " ".join(["python", "run.py", *OVERRIDES]), "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_rss_mb": after.ru_maxrss / 1024, "metrics": json.loads(found[0].read_text()),
            "lds_line": next((ln for ln in proc.stdout.splitlines() if ln.startswith("LDS ")), None)}


def breakdown(wall: float, m: dict) -> list[dict]:
    """Rows {"part", "s", "share", "kind"} that add up to the outside wall time (see the module docstring)."""
    t = {k[len("time/"):]: v for k, v in m.items() if k.startswith("time/") and isinstance(v, (int, float))}
    if "run_s" not in t:
        raise SystemExit("metrics.json has no time/run_s: this checkout's grass/pipeline.py predates the benchmark")
    rows = [("start-up and exit (interpreter, imports, Hydra)", wall - t["run_s"], "untimed"),
            ("load (data, task, checks)", t.get("load_s", 0.0), "untimed")]
    stages = {k[len("stage/"):-2]: v for k, v in t.items() if k.startswith("stage/")}
    stages = {n: stages[n] for n in sorted(stages, key=lambda n: (STAGE_ORDER + (n,)).index(n))}
    for name, seconds in stages.items():
        if name != "attribute":
            rows.append((f"stage {name}", seconds, "timed" if name in TIMED_BEFORE else "untimed"))
            continue
        parts = {p: t[p] for p in ATTRIBUTE_PARTS if p in t}
        if "capture_train_s" in parts or "capture_query_s" in parts:  # linear capture: compress is inside capture
            parts.pop("compress_train_s", None), parts.pop("compress_query_s", None)
        for p, s in parts.items():
            rows.append((f"stage attribute: {p[:-2]}", s, "timed"))
        rows.append(("stage attribute: rest (model loads, TRAK weights, validation setup)",
                     seconds - sum(parts.values()), "untimed"))
    rows.append(("in-run remainder (tracker, metrics)", t["run_s"] - t.get("load_s", 0.0) - sum(stages.values()),
                 "untimed"))
    return [{"part": p, "s": s, "share": s / wall, "kind": k} for p, s, k in rows]


def markdown(result: dict) -> str:
    lines = [f"End to end: `{result['command']}` from an empty paths.root; {benchlib.machine_line(result['machine'])}"
             + (" (QUICK sizes)" if QUICK else ""), "",
             f"wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
             f"timed {result['timed_s']:.1f} s ({result['timed_s'] / result['wall_s']:.0%}), untimed "
             f"{result['untimed_s']:.1f} s; load average {result['load_before']:.1f} before, "
             f"{result['load_after']:.1f} after; {result.get('lds_line') or ''}", "",
             "| part | s | share | kind |", "|---|---|---|---|"]
    lines += [f"| {r['part']} | {r['s']:.2f} | {r['share']:.1%} | {r['kind']} |" for r in result["breakdown"]]
    return "\n".join(lines)


def main() -> None:
    info = benchlib.machine()
    root = Path(tempfile.mkdtemp(prefix="grass_bench_e2e_"))
    try:
        load_before = os.getloadavg()[0]
        child = run_child(root)
        load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = breakdown(child["wall_s"], child["metrics"])
    metrics = {k: v for k, v in child["metrics"].items() if k.startswith(("time/", "lds/", "run/"))}
    result = {"machine": info, "command": child["command"], "overrides": OVERRIDES, "wall_s": child["wall_s"],
              "cpu_s": child["cpu_s"], "peak_rss_mb": child["peak_rss_mb"], "load_before": load_before,
              "load_after": load_after, "lds_line": child["lds_line"], "breakdown": rows,
              "timed_s": sum(r["s"] for r in rows if r["kind"] == "timed"),
              "untimed_s": sum(r["s"] for r in rows if r["kind"] == "untimed"), "metrics": metrics}
    print(markdown(result))
    benchlib.write_result("end_to_end", result)


if __name__ == "__main__":
    main()
