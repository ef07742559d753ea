"""The contract of a task's output function f(model, example): one definition per task, used everywhere.

A task's `target(kind)` (grass.tasks.base.Task.target) returns a `Target`. The same object is what
  - the ground truth evaluates (Task.query_outputs = target("margin").value on the query batches),
  - factorized (linear-layer) capture differentiates (grass.capture.linear.LinearCapture: autograd of
    sum_b f_b w.r.t. the layer outputs),
  - flat (whole-model) capture differentiates (grass.capture.flat: torch.func vmap(grad) over the batch
    dimension, one example at a time),
  - TRAK's per-example weight Q = 1 - p comes from (`trak_weight`).

Batches are what `Task.batches(side, batch_size, device, rows)` yields: a tuple of tensors (x [B, ...], y [B])
or a dict of tensors ({input_ids [B, T], attention_mask [B, T], ...}), every tensor with the batch dimension
first. Flat capture slices one example out of every tensor and puts back a batch dimension of 1, so `value`
always sees a real batch ([1, ...] under vmap).

Rules for `value(model, batch) -> [B]` (so torch.func can vmap it):
  - call the model only as `model(...)` (flat capture passes a stand-in that runs the model functionally
    with the parameters being differentiated: no other attribute of the model may be read);
  - no data-dependent Python control flow and no `.item()` / `bool(tensor)` on the batch: checks of the
    data go in `check(batch)`, which runs eagerly, outside vmap, before `value`;
  - examples must not interact (the model runs in eval mode: dropout off, BatchNorm on its running
    statistics), so row b depends on example b alone;
  - no in-place writes into the batch's tensors.

`margin` is the log-odds log p - log(1 - p) of a probability p the task defines (classification: p(y | x);
language model block: p = exp(mean token log-prob); music: p of the last token), and `trak_weight` returns
1 - p for that same p: TRAK's Q (SPEC 1.2), computed from the same code the margin uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from grass.errors import GrassError

TARGETS = ("loss", "margin")


def check_kind(kind: str) -> str:
    """`kind` itself if it is a known target ("loss" | "margin"), else GrassError."""
    if kind not in TARGETS:
        raise GrassError(f"unknown target {kind!r}; choose one of {list(TARGETS)}")
    return kind


class Target(ABC):
    """A task's per-example output function (see the module docstring for the contract).

    kind: "loss" (the training loss of the example) or "margin" (the log-odds the ground truth measures).
    """

    def __init__(self, kind: str = "loss") -> None:
        self.kind = check_kind(kind)

    def check(self, batch: Any) -> None:  # noqa: B027 (optional: most targets have nothing to check)
        """GrassError naming the first example of `batch` whose value is undefined; runs outside vmap."""

    @abstractmethod
    def value(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """f of every example in `batch` -> [B]; vmappable (module docstring), no checks."""

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """check, then value -> [B]."""
        self.check(batch)
        return self.value(model, batch)

    def token_mask(self, batch: Any) -> torch.Tensor | None:
        """[B, T] with 1 for the tokens that count (linear capture zeroes the others' gradients), or None."""
        return None

    @abstractmethod
    def trak_weight(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """TRAK's Q = 1 - p per example [B] (p: the probability whose log-odds is the margin); no grad needed."""
