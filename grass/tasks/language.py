"""Causal LMs on token blocks (GPT-2 family): base pretraining, subset fine-tuning, per-block margins.

A model whose dataset has pretrain blocks (gpt2_tiny on the offline corpus) first gets a base trained by
the framework on those blocks (`pretrain.*` in config), stored once as an artifact; subset models are
then fine-tuned from it, so fine-tuning is real fine-tuning. Without pretrain blocks the model builder's
weights are the base (GPT-2 small from the hub).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from grass.capture.linear import LMTarget
from grass.data.text import TextBlocks, lm_batch
from grass.errors import GrassError
from grass.fingerprint import fingerprint
from grass.instantiate import instantiate_node
from grass.io import atomic_save, load_checked
from grass.models.lm_module import CausalLMModule
from grass.seeding import derive_seed, generator
from grass.tasks.base import Task, lightning_fit

log = logging.getLogger(__name__)


class LanguageTask(Task):
    data: TextBlocks

    def __init__(self, cfg, data: TextBlocks) -> None:
        super().__init__(cfg, data)
        if cfg.finetune.optimizer != "adamw":
            raise GrassError(f"language models fine-tune with AdamW (the paper's recipe); finetune.optimizer="
                             f"{cfg.finetune.optimizer!r} is not supported for dataset={cfg.dataset.name}")
        self._base: nn.Module | None = None

    def fingerprint_extra(self) -> dict:
        return {"pretrain": self.cfg.pretrain} if self.data.n_pretrain else {}

    def base_path(self, ctx) -> Path:
        key = fingerprint({"dataset": self.cfg.dataset, "model": self.cfg.model, "pretrain": self.cfg.pretrain,
                           "seed": self.cfg.seed})
        return ctx.artifacts / "base" / f"{self.cfg.dataset.name}-{self.cfg.model.name}-{key}" / "base.pt"

    def _build(self) -> nn.Module:
        # vocab_size null in the model config = as many token rows as the dataset's vocabulary
        fit_vocab = "vocab_size" in self.cfg.model and self.cfg.model.vocab_size is None
        model = instantiate_node(self.cfg.model, "model", **({"vocab_size": self.data.vocab_size} if fit_vocab else {}))
        vocab = model.get_input_embeddings().num_embeddings
        if vocab < self.data.vocab_size:
            raise GrassError(f"model {self.cfg.model.name} has {vocab} token embeddings but the tokenizer of "
                             f"dataset {self.data.name} has {self.data.vocab_size} tokens")
        return model

    def prepare(self, ctx) -> None:
        if self._base is not None:
            return
        model = self._build()
        if not self.data.n_pretrain:
            log.info("no pretrain blocks: subset models fine-tune from the %s builder's weights", self.cfg.model.name)
            self._base = model
            return
        path = self.base_path(ctx)
        if path.exists():
            model.load_state_dict(load_checked(path, hint="delete it to pretrain the base again"))
        else:
            model = self._pretrain(ctx, model)
            atomic_save(model.state_dict(), path)
        self._base = model.eval()
        ctx.metrics["pretrain/query_loss"] = float(self.query_losses(self._base, ctx.device).mean())
        log.info("base model %s: mean query token loss %.3f", path, ctx.metrics["pretrain/query_loss"])

    def _pretrain(self, ctx, model: nn.Module) -> nn.Module:
        pre = self.cfg.pretrain
        seed = derive_seed(self.cfg.seed, "pretrain")
        L.seed_everything(seed % (2**31), workers=True, verbose=False)
        log.info("pretraining the %s base on %d blocks for %d epochs", self.cfg.model.name, self.data.n_pretrain,
                 pre.epochs)
        module = CausalLMModule(model, lr=pre.lr, weight_decay=pre.weight_decay, schedule=pre.schedule,
                                warmup_steps=pre.warmup_steps)
        loader = DataLoader(self.data.pretrain_dataset(), batch_size=pre.batch_size, shuffle=True,
                            generator=generator(seed, "loader"))
        with ctx.timed("time/pretrain_s"):
            lightning_fit(ctx, module, loader, pre.epochs, progress_bar=True)
        return model.cpu().eval()

    def _fresh(self) -> nn.Module:
        if self._base is None:
            raise GrassError("the base model is not prepared; the finetune stage prepares it")
        return copy.deepcopy(self._base)

    def train_one(self, ctx, seed: int, rows: torch.Tensor) -> nn.Module:
        self.prepare(ctx)
        L.seed_everything(seed % (2**31), workers=True, verbose=False)
        model = self._fresh()
        ft = self.cfg.finetune
        module = CausalLMModule(model, lr=ft.lr, weight_decay=ft.weight_decay, schedule=ft.schedule)
        loader = DataLoader(self.data.train_dataset(rows), batch_size=ft.batch_size, shuffle=True,
                            generator=generator(seed, "loader"))
        lightning_fit(ctx, module, loader, ft.epochs)
        return model.cpu().eval()

    def load(self, ctx, path: Path) -> nn.Module:
        self.prepare(ctx)
        model = self._fresh()
        model.load_state_dict(load_checked(path, hint="run stage=finetune (or stage=all) first"))
        return model.eval()

    @torch.no_grad()
    def _per_block(self, model: nn.Module, kind: str, device: torch.device) -> torch.Tensor:
        model.eval()
        target = LMTarget(kind)
        return torch.cat([target(model, b).float().cpu()
                          for b in self.batches("query", self.cfg.hardware.capture_batch_size, device)])

    def query_outputs(self, model: nn.Module, device: torch.device) -> torch.Tensor:
        """Per-query-block margin logp - log(1 - exp(logp)), logp = -mean token loss (SPEC 5)."""
        return self._per_block(model, "margin", device)

    def query_losses(self, model: nn.Module, device: torch.device) -> torch.Tensor:
        return self._per_block(model.to(device), "loss", device)

    def target(self, kind: str) -> LMTarget:
        return LMTarget(kind)

    def batches(self, side: str, batch_size: int, device: torch.device, rows: torch.Tensor | None = None):
        if side == "train":
            ids, mask = self.data.train_ids, self.data.train_mask
        elif side == "query":
            ids, mask = self.data.query_ids, self.data.query_mask
        else:
            raise GrassError(f"side must be 'train' or 'query', got {side!r}")
        if rows is not None:
            ids, mask = ids[rows], mask[rows]
        for i in range(0, len(ids), batch_size):
            yield {k: v.to(device) for k, v in lm_batch(ids[i:i + batch_size], mask[i:i + batch_size]).items()}
