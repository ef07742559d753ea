"""What the hardware group changes about training itself (not where it runs): the effective recipe; thread counts."""

from contextlib import contextmanager

import torch

from grass.errors import GrassError

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


@contextmanager
def torch_threads(n: int | None):
    """torch's intra-op thread count set to n for the block and restored after (None: left as it is).

    Small-matrix work (the ensemble's training steps, layer-wise per-example gradients: hardware.small_matrix_threads,
    default 1) costs less on one thread per process on this project's loaded 2-core machine; BLAS-heavy solves keep
    hardware.num_threads (null: torch's default, all cores)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
