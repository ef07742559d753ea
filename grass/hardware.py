"""What the hardware group changes about training itself (not where it runs): the effective recipe."""

import torch

from grass.errors import GrassError


def world_size(hw) -> int:
    """Training processes Lightning starts for `hardware.devices` (int, list of ids, "auto" or -1)."""
    devices = hw.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices > 0:
        return devices
    if devices in ("auto", -1):
        return max(1, torch.cuda.device_count()) if hw.accelerator in ("gpu", "cuda") else 1
    try:
        return len(list(devices))
    except TypeError:
        raise GrassError(f"hardware.devices={devices!r}: give a count, a list of device ids, or auto") from None


def training_recipe(hw) -> dict:
    """The parts of the hardware group that change the trained weights: under DDP each of the world size
    processes takes its own per-process batch, so one optimizer step sees world_size x batch_size examples;
    and the training precision."""
    return {"world_size": world_size(hw), "precision": str(hw.precision)}
