"""What the hardware group changes about training itself (not where it runs): the effective recipe; thread counts."""

import logging
from contextlib import contextmanager

import torch

from grass.errors import GrassError

log = logging.getLogger(__name__)
IDLE_PROBE_S = 0.25  # how long small_matrix_threads watches the CPUs when it decides by itself
_AUTO_THREADS: dict[str, int] = {}  # decided once per process

# Lightning strategies that train in processes grass starts itself (fork / spawn): Lightning's plain "ddp"
# (and "auto" with several devices) relaunches the command line, i.e. a whole `run.py` per extra process.
IN_PROCESS_DDP = ("ddp_fork", "ddp_spawn", "ddp_notebook")
# Lightning's precision aliases, so that "32" and "32-true" are one recipe (one models folder)
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}


def world_size(hw) -> int:
    """Training processes Lightning starts for `hardware.devices` (a count, a list of ids, "auto" or -1).

    Raises GrassError for anything else (0, a negative count other than -1, a word)."""
    devices = hw.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if devices > 0:
            return devices
        if devices == -1:
            return _all_devices(hw)
    elif devices == "auto":
        return _all_devices(hw)
    elif not isinstance(devices, str) and hasattr(devices, "__len__") and len(devices) > 0:
        return len(devices)
    raise GrassError(f"hardware.devices={devices!r}: give a count >= 1, a list of device ids, auto or -1")


def _all_devices(hw) -> int:
    return max(1, torch.cuda.device_count()) if hw.accelerator in ("gpu", "cuda") else 1


def precision(hw) -> str:
    return PRECISION_ALIASES.get(str(hw.precision), str(hw.precision))


def training_recipe(hw) -> dict:
    """The parts of the hardware group that change the trained weights: under DDP each of the world size
    processes takes its own per-process batch, so one optimizer step sees world_size x batch_size examples;
    and the training precision. Raises GrassError for an unusable hardware.devices."""
    return {"world_size": world_size(hw), "precision": precision(hw)}


def check_training_hardware(hw) -> None:
    """GrassError unless several training processes are started in process (fork / spawn)."""
    size = world_size(hw)
    if size > 1 and not str(hw.strategy).startswith(IN_PROCESS_DDP):
        raise GrassError(f"hardware.devices={hw.devices} trains in {size} processes, which needs "
                         f"hardware.strategy={' or '.join(IN_PROCESS_DDP[:2])}, not {hw.strategy!r}: Lightning's "
                         f"'{hw.strategy}' would start {size - 1} more copies of run.py, each running the whole "
                         f"pipeline; use hardware=ddp (ddp_fork on CPU; strategy=ddp_spawn on GPUs)")


def small_matrix_threads(hw) -> int:
    """Torch threads for small-matrix work (the ensemble's training steps, layer-wise per-example gradients).

    hardware.small_matrix_threads when set; null (the default): the cores left idle by everything else, measured
    once per process (psutil's CPU busy share over IDLE_PROBE_S while this process waits), at least 1 and at most
    hardware.num_threads (null: torch's count). Why: on the idle 2-core box two threads train the default models
    1.6x faster than one, while beside other jobs two threads cost 10-30x more CPU than one (README, issue #16);
    the trained weights are the same bits either way (tests/unit/test_hardware_threads.py)."""
    configured = hw.get("small_matrix_threads")
    if configured:
        return int(configured)
    if "auto" not in _AUTO_THREADS:
        import psutil

        cap = int(hw.get("num_threads") or torch.get_num_threads())
        busy = psutil.cpu_percent(interval=IDLE_PROBE_S) / 100.0
        idle = (psutil.cpu_count() or 1) * (1.0 - busy)
        _AUTO_THREADS["auto"] = max(1, min(cap, int(idle + 0.5)))
        log.info("small-matrix work on %d torch threads (%.1f of %d CPUs idle; hardware.small_matrix_threads=N "
                 "sets it)", _AUTO_THREADS["auto"], idle, psutil.cpu_count() or 1)
    return _AUTO_THREADS["auto"]


@contextmanager
def torch_threads(n: int | None):
    """torch's intra-op thread count set to n for the block and restored after (None: left as it is).

    Small-matrix work runs under small_matrix_threads(hw); BLAS-heavy solves keep hardware.num_threads (null: torch's
    default, all cores)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
