"""What the Python API attributes: a model (or several checkpoints of it) and the scalar output per example.

ClassifierTask: batches are (x [B, ...], y [B]) with integer labels; outputs "loss" (cross-entropy) or "margin"
(log p_y - log(1 - p_y)), grass.outputs. CausalLMTask: batches are {"input_ids" [B, T], "attention_mask" [B, T]
(optional), "labels" [B, T] (optional, -100 = ignored)}; the output is the example's mean next-token loss or its
margin (grass.capture.linear.LMTarget). Which of the two is attributed follows the tda (trak: margin; if_efim and
grad_dot: loss), as on the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from grass.capture.linear import ClassifierTarget, LMTarget
from grass.errors import GrassError


class AttributionTask:
    """One or more checkpoints of a model (same architecture, e.g. TRAK's independently trained models).

    models: an nn.Module or a sequence of them; each is used in eval mode with its parameters frozen during
    capture, and is moved to the Attributor's device.
    """

    kind = "task"

    def __init__(self, models: nn.Module | Sequence[nn.Module]) -> None:
        models = [models] if isinstance(models, nn.Module) else list(models)
        if not models or not all(isinstance(m, nn.Module) for m in models):
            raise GrassError("a task needs an nn.Module or a non-empty sequence of nn.Modules (its checkpoints)")
        self.models = models

    def target(self, output: str):
        """The per-example output `output` ("loss" | "margin") that capture differentiates: f(model, batch) -> [B]."""
        raise NotImplementedError

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """The batch with its tensors on `device`."""
        raise NotImplementedError

    def batch_size(self, batch: Any) -> int:
        """Examples in the batch."""
        raise NotImplementedError


class ClassifierTask(AttributionTask):
    """A classifier: model(x [B, ...]) -> logits [B, classes]; batches (x, y) as a TensorDataset's loader yields."""

    kind = "classifier"

    def target(self, output: str) -> ClassifierTarget:
        return ClassifierTarget(output)

    def split(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(x [B, ...], y [B] long) of a batch; GrassError for any other batch shape."""
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise GrassError(f"a classifier batch must be (x, y), got {type(batch).__name__}"
                             f"{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}")
        x, y = batch
        if not (torch.is_tensor(x) and torch.is_tensor(y)) or y.ndim != 1 or y.is_floating_point():
            raise GrassError("a classifier batch must be (x [B, ...] tensor, y [B] integer labels)")
        return x, y

    def to_device(self, batch, device):
        x, y = self.split(batch)
        return x.to(device), y.to(device)

    def batch_size(self, batch) -> int:
        return int(self.split(batch)[1].shape[0])


class CausalLMTask(AttributionTask):
    """A causal LM (a Hugging Face model: model(input_ids=, attention_mask=).logits [B, T, V]), whose projections are
    nn.Linear (convert GPT-2's Conv1D with grass.models.conv1d first); factorized compressors only."""

    kind = "causal_lm"

    def target(self, output: str) -> LMTarget:
        return LMTarget(output)

    def to_device(self, batch, device):
        if not isinstance(batch, Mapping) or "input_ids" not in batch:
            raise GrassError(f"a causal LM batch must be a mapping with input_ids [B, T] (and optionally "
                             f"attention_mask, labels), got {type(batch).__name__}")
        return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}

    def batch_size(self, batch) -> int:
        return int(batch["input_ids"].shape[0])
