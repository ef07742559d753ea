"""LightningModule that trains any classifier with the optimiser and schedule from `finetune` config."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from grass.errors import GrassError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "linear")


class ClassifierModule(L.LightningModule):
    def __init__(self, model: nn.Module, lr: float, optimizer: str = "adam", weight_decay: float = 0.0,
                 momentum: float = 0.9, schedule: str = "constant"):
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise GrassError(f"finetune.optimizer={optimizer!r}; choose one of {list(OPTIMIZERS)}")
        if schedule not in SCHEDULES:
            raise GrassError(f"finetune.schedule={schedule!r}; choose one of {list(SCHEDULES)}")
        self.model = model
        self.lr, self.optimizer_name, self.weight_decay = lr, optimizer, weight_decay
        self.momentum, self.schedule = momentum, schedule

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return make_optimizers(self, self.model.parameters())


def make_optimizers(module: L.LightningModule, params):
    """configure_optimizers' answer for `params` under the module's optimizer settings (lr, optimizer_name,
    weight_decay, momentum, schedule): the optimizer, plus a per-step linear decay to 0 for schedule=linear.
    Every optimizer here is elementwise per parameter, so on stacked parameters [M, ...] (the ensemble) it is M
    independent optimizers."""
    if module.optimizer_name == "sgd":
        opt = torch.optim.SGD(params, lr=module.lr, momentum=module.momentum, weight_decay=module.weight_decay)
    elif module.optimizer_name == "adamw":
        opt = torch.optim.AdamW(params, lr=module.lr, weight_decay=module.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=module.lr, weight_decay=module.weight_decay)
    if module.schedule == "constant":
        return opt
    total = module.trainer.estimated_stepping_batches
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / max(1, total)))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
