"""LightningModule that trains a MusicTransformer on event windows: next-event cross-entropy.

Batches are (x [B, T], y [B, T]) event ids (grass.data.music); the loss is the mean cross-entropy of
every y[b, t] given x[b, :t + 1], PAD targets ignored (dattri's `train_epoch` loss). Optimiser and
schedule come from `finetune` as for classifiers (dattri's MAESTRO recipe: Adam, constant lr 1e-4).
"""

import torch
import torch.nn.functional as F

from grass.errors import GrassError
from grass.models.classifier_module import ClassifierModule
from grass.models.music_transformer import TOKEN_PAD


class MusicModule(ClassifierModule):
    def on_fit_start(self) -> None:
        # builders return models in eval mode and Lightning keeps each submodule's mode: switch dropout on
        self.model.train()

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)  # [B, T, V]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=TOKEN_PAD)
        if not torch.isfinite(loss):
            raise GrassError(f"non-finite training loss {float(loss)} (finetune.lr={self.lr} too high?)")
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=int(x.shape[0]))
        return loss
