"""Materialized per-example gradients of linear layers for learning per-layer selective masks.

Mask learning needs each example's layer gradient G [O, I'] (SPEC 4 on a linear layer: its inner
products are what the mask must keep). These are built for a few hundred examples only, never on the
attribution path. Layers are captured in groups whose gradients fit `budget_bytes`, one forward/backward
pass over the rows per group; a layer larger than the budget on its own is captured alone (and said so).
"""

from __future__ import annotations

import glob
import logging
from typing import Iterator, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from grass.capture.linear import LinearCapture

log = logging.getLogger(__name__)


def layer_groups(dims: Mapping[str, tuple[int, int]], n_rows: int, budget_bytes: int) -> list[list[str]]:
    """Consecutive layers grouped so that n_rows * sum(O * I') float32 values fit budget_bytes per group.

    dims: {layer: (O, I')} in model order.
    """
    groups: list[list[str]] = []
    current, used = [], 0
    for name, (o, i) in dims.items():
        size = 4 * int(n_rows) * int(o) * int(i)
        if current and used + size > budget_bytes:
            groups.append(current)
            current, used = [], 0
        if size > budget_bytes:
            log.warning("selective mask: layer '%s' needs %.2f GB for %d gradient rows, over the %.2f GB budget; "
                        "capturing it alone", name, size / 1e9, n_rows, budget_bytes / 1e9)
        current.append(name)
        used += size
    if current:
        groups.append(current)
    return groups


def iter_layer_grads(model: nn.Module, target, task, rows: torch.Tensor, dims: Mapping[str, tuple[int, int]],
                     batch_size: int, device: torch.device, budget_bytes: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (layer, G [len(rows), O, I'] float32 on device) for every layer in dims, group by group."""
    for group in layer_groups(dims, len(rows), budget_bytes):
        capture = LinearCapture(
            model, target, [glob.escape(n) for n in group], None
        )  # None: the full gradient of each selected layer
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in group}
        batches = task.batches("train", batch_size, device, rows=rows)
        desc = f"layer gradients ({len(group)} layer{'s' if len(group) > 1 else ''})"
        for batch in tqdm(batches, total=-(-len(rows) // batch_size), desc=desc, unit="batch", leave=False,
                          disable=None):
            for name, g in capture.capture(batch).items():
                parts[name].append(g.detach())
        for name in group:
            o, i = dims[name]
            yield name, torch.cat(parts.pop(name)).view(len(rows), o, i)
