"""LightningModule that trains a Hugging Face causal LM on token blocks (subset fine-tuning, base pretraining).

Batches are `grass.data.text.lm_batch` dicts {input_ids [B, T], attention_mask [B, T], labels [B, T]}.
The loss is the HF model's own: mean next-token cross-entropy over every labelled token of the batch
(label -100, i.e. padding, ignored). The paper's Table 2 fine-tuning: AdamW, lr 5e-5, weight decay 0,
batch 8, 3 epochs, linear decay per step (`finetune.*` in config).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from grass.errors import GrassError

SCHEDULES = ("constant", "linear")


def linear_schedule(warmup_steps: int, total_steps: int):
    """lr factor per optimizer step: 0 -> 1 over warmup_steps, then linear down to 0 at total_steps
    (the formula of transformers' get_linear_schedule_with_warmup)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


class CausalLMModule(L.LightningModule):
    """model: an HF causal LM (forward(input_ids, attention_mask, labels) -> output with .loss)."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float = 0.0, schedule: str = "linear",
                 warmup_steps: int = 0) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise GrassError(f"finetune.schedule={schedule!r}; choose one of {list(SCHEDULES)}")
        if lr <= 0 or weight_decay < 0 or warmup_steps < 0:
            raise GrassError(
                f"need lr > 0, weight_decay >= 0, warmup_steps >= 0; got {lr}, {weight_decay}, {warmup_steps}"
            )
        self.model = model
        self.lr, self.weight_decay, self.schedule, self.warmup_steps = lr, weight_decay, schedule, warmup_steps

    def loss(self, batch: dict) -> torch.Tensor:
        """Mean token cross-entropy of the batch (scalar)."""
        mask = batch.get("attention_mask")
        labels = batch.get("labels", batch["input_ids"])
        if mask is not None:  # padding never counts, even when the labels do not mark it -100
            labels = labels.masked_fill(mask == 0, -100)
        out = self.model(input_ids=batch["input_ids"], attention_mask=mask, labels=labels)
        if not torch.isfinite(out.loss):
            raise GrassError(
                f"non-finite training loss {float(out.loss)} (lr {self.lr} too high, or a batch with no labelled token)"
            )
        return out.loss

    def on_fit_start(self) -> None:
        # builders return models in eval mode and Lightning keeps each submodule's mode: without this,
        # dropout would be off during training (HF's Trainer trains GPT-2 with dropout on)
        self.model.train()

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log(
            "train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=int(batch["input_ids"].shape[0])
        )
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.schedule == "constant":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(self.warmup_steps, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
