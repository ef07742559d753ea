"""Shared helpers for the bench/ scripts: sizes from the environment, timing, machine facts, JSON output.

The scripts run as `python bench/<name>.py`, so this folder is on sys.path and `import benchlib` works.
Environment (no argparse):
  GRASS_BENCH_QUICK=1      seconds-long smoke sizes; results go to a temp folder, not bench/results
  GRASS_BENCH_RESULTS=DIR  where results are written and read (overrides both defaults)
  GRASS_BENCH_MEASURE_S=S  time budget per measurement, which caps the repeats (default 10 s, quick 1 s)
  GRASS_BENCH_ROUNDS=N     rounds of the interleaved (A B C A B C ...) timings (default 3, quick 1)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPEATS = 5  # most repeats of one measurement; slow calls get fewer (see time_call)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


QUICK = env_flag("GRASS_BENCH_QUICK")
MEASURE_S = env_float("GRASS_BENCH_MEASURE_S", 1.0 if QUICK else 10.0)
ROUNDS = int(env_float("GRASS_BENCH_ROUNDS", 1 if QUICK else 3))


def results_dir() -> Path:
    """bench/results, or a temp folder in quick mode so smoke runs never overwrite real numbers."""
    if os.environ.get("GRASS_BENCH_RESULTS"):
        return Path(os.environ["GRASS_BENCH_RESULTS"])
    if QUICK:
        return Path(tempfile.gettempdir()) / "grass_bench_quick"
    return Path(__file__).resolve().parent / "results"


def write_result(name: str, payload: dict) -> Path:
    out = results_dir() / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": name, "quick": QUICK, **payload}, indent=2))
    print(f"\nwrote {out}")
    return out


def gradient_rows(batch: int, d: int, zero_frac: float = 0.0) -> torch.Tensor:
    """Seeded stand-ins for per-example gradients: x [batch, d] float32 N(0, 1), about zero_frac of it zeroed."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, d, generator=g)
    if zero_frac:
        x *= torch.rand(batch, d, generator=g) >= zero_frac
    return x


def time_call(fn, repeats: int = REPEATS, budget_s: float | None = None, sync=None) -> dict:
    """Median wall and process-CPU ms of fn() after one warm-up call.

    The warm-up call's time sets the number of repeats: as many as fit in `budget_s` (at least 1, at
    most `repeats`), so a 40 s call is timed once more rather than five times. The CPU time (all
    threads of this process) is kept because a shared machine inflates wall time with waiting.
    sync (e.g. torch.cuda.synchronize) runs before each clock start and stop, so queued GPU work is
    counted in the call that launched it.
    """
    budget_s = MEASURE_S if budget_s is None else budget_s
    sync = sync or (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    warmup = time.perf_counter() - start
    n = max(1, min(repeats, int(budget_s / max(warmup, 1e-9))))
    wall, cpu = [], []
    for _ in range(n):
        sync()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"ms": 1e3 * statistics.median(wall), "cpu_ms": 1e3 * statistics.median(cpu),
            "repeats": n, "warmup_ms": 1e3 * warmup}


def time_interleaved(fns: dict, rounds: int, sync=None) -> dict:
    """{name: {"ms", "cpu_ms", "repeats", "warmup_ms", "round_ms"}} for calls timed in rounds, A B C A B C ...

    For seconds-long calls compared as ratios: a shared machine's speed drifts over minutes, and timing
    each callable's repeats back to back would put that drift into the ratio. Every callable is warmed
    up once first; one that raises is left out of the rounds and reported as {"not_run": the error}.
    """
    sync = sync or (lambda: None)
    out, live = {}, {}
    for name, fn in fns.items():
        try:
            sync()
            start = time.perf_counter()
            fn()
            sync()
        except Exception as err:  # recorded, never faked
            out[name] = {"not_run": f"{type(err).__name__}: {str(err)[:500]}"}
            continue
        out[name] = {"warmup_ms": 1e3 * (time.perf_counter() - start), "round_ms": [], "round_cpu_ms": []}
        live[name] = fn
    for _ in range(rounds):
        for name, fn in live.items():
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync()
            out[name]["round_ms"].append(1e3 * (time.perf_counter() - start))
            out[name]["round_cpu_ms"].append(1e3 * (time.process_time() - start_cpu))
    for name in live:
        r = out[name]
        r.update(ms=statistics.median(r["round_ms"]), cpu_ms=statistics.median(r["round_cpu_ms"]), repeats=rounds)
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine() -> dict:
    """What the numbers depend on: CPU, cores, torch threads, memory and how busy the machine was."""
    return {"processor": platform.processor(), "machine": platform.machine(), "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "mem_gb": _mem_gb(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def machine_line(info: dict) -> str:
    load, mem = info.get("load_average_1min"), info.get("mem_gb")
    return (f"{info.get('cpu_model') or info.get('processor')} ({info.get('machine')}), "
            f"{info.get('cpu_count')} CPUs{'' if mem is None else f', {mem:.0f} GB'}, torch {info.get('torch')} "
            f"with {info.get('torch_threads')} threads, 1-min load average at start "
            f"{load if load is None else f'{load:.1f}'}")


def device_sync(device: torch.device):
    """What time_call needs to wait for `device`'s queued work: None on CPU."""
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # not installed: the caller records the peer as not run
        return None


def lm_corpus() -> Path:
    """The offline text the language-model benches read: GRASS_BENCH_CORPUS, else data_cache/janeausten (`make
    corpus`). In quick mode, a folder's smallest .txt file (Northanger Abbey, about a ninth of the novels' tokens):
    tokenizing the whole corpus, once per process, is most of a smoke run. A missing path is returned as is (the
    caller says so)."""
    path = Path(os.environ.get("GRASS_BENCH_CORPUS", Path(__file__).resolve().parents[1] / "data_cache" / "janeausten"))
    files = sorted(path.glob("*.txt")) if QUICK and path.is_dir() else []
    return min(files, key=lambda f: f.stat().st_size) if files else path
