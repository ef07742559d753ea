"""Per-layer compressed features of a stream of batches, with every row checked finite."""

from typing import Iterable, Sequence

import torch

from grass.capture.linear import LinearCapture
from grass.errors import GrassError
from grass.run_context import RunContext


def capture_batches(capture: LinearCapture, batches: Iterable, labels: Sequence[str]) -> dict[str, torch.Tensor]:
    """{layer: [len(labels), K_l]} float32 on the CPU; a non-finite row is an error naming its label."""
    parts = {name: [] for name in capture.layers}
    for batch in batches:
        for name, feats in capture.capture(batch).items():
            parts[name].append(feats.detach().float().cpu())
    out = {name: torch.cat(p) for name, p in parts.items()}
    for name, feats in out.items():
        check_rows_finite(name, feats, labels)
    return out


def check_rows_finite(block: str, feats: torch.Tensor, labels: Sequence[str]) -> None:
    """GrassError unless feats [len(labels), K] has one finite row per example (the first bad one is named)."""
    if feats.shape[0] != len(labels):
        raise GrassError(f"layer '{block}': {feats.shape[0]} feature rows for {len(labels)} examples")
    bad = (~torch.isfinite(feats)).any(dim=1)
    if bool(bad.any()):
        raise GrassError(f"{labels[int(bad.nonzero()[0])]} has a non-finite gradient (layer '{block}'); none "
                         f"of its batch was stored. Check that example's data and the model's loss on it")


def example_labels(side: str, rows: torch.Tensor) -> list[str]:
    """"train example 13", ...: how errors name the examples `rows` of a side."""
    return [f"{side} example {int(r)}" for r in rows]


def capture_rows(ctx: RunContext, capture: LinearCapture, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Features of the `side` examples `rows` (train or query), labelled by example number."""
    batches = ctx.task.batches(side, ctx.cfg.hardware.capture_batch_size, ctx.device, rows=rows)
    return capture_batches(capture, batches, example_labels(side, rows))
