"""Causal LMs on token blocks (GPT-2, Llama): base pretraining, subset fine-tuning, per-block margins.

A model that is not pretrained (gpt2_tiny) and whose dataset has pretrain blocks first gets a base trained by
the framework on those blocks (`pretrain.*` in config), stored once as an artifact; subset models are
then fine-tuned from it, so fine-tuning is real fine-tuning. Otherwise the model builder's weights are the
base: always for a model config with `pretrained: true` (GPT-2 small, SmolLM2, Llama 3.1), whose dataset
must then tokenize with the model's own tokenizer (same vocabulary size, no compaction).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from grass.artifact_paths import base_file
from grass.artifacts import artifact_lock, artifact_ready, load_artifact, save_artifact
from grass.capture.linear import LMTarget
from grass.data.text import TextBlocks, lm_batch
from grass.errors import GrassError
from grass.fingerprint import fingerprint, normalize
from grass.hardware import training_recipe
from grass.models.build import FINETUNE_HINT, build_lm, is_pretrained
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
        return {"pretrain": self.cfg.pretrain} if self.pretrains_base else {}

    @property
    def pretrains_base(self) -> bool:
        """Whether grass trains the base on the pretrain blocks (a model not pretrained, and blocks to do it)."""
        return bool(self.data.n_pretrain) and not is_pretrained(self.cfg.model)

    def base_settings(self) -> dict:
        """What grass's pretrained base depends on (its training recipe included)."""
        return normalize({"dataset": self.cfg.dataset, "model": self.cfg.model, "pretrain": self.cfg.pretrain,
                          "recipe": training_recipe(self.cfg.hardware), "seed": self.cfg.seed})

    def base_path(self, ctx) -> Path:
        key = fingerprint(self.base_settings())
        return base_file(ctx.artifacts, self.cfg.dataset.name, self.cfg.model.name, key)

    def _build(self) -> nn.Module:
        # vocab_size null in the model config = as many token rows as the dataset's vocabulary
        fit_vocab = "vocab_size" in self.cfg.model and self.cfg.model.vocab_size is None
        model = build_lm(self.cfg.model, **({"vocab_size": self.data.vocab_size} if fit_vocab else {}))
        vocab = model.get_input_embeddings().num_embeddings
        if is_pretrained(self.cfg.model):
            self._check_own_tokenizer(vocab)
        elif vocab < self.data.vocab_size:
            raise GrassError(f"model {self.cfg.model.name} has {vocab} token embeddings but the tokenizer of "
                             f"dataset {self.data.name} has {self.data.vocab_size} tokens")
        return model

    def skeleton(self) -> nn.Module | None:
        if is_pretrained(self.cfg.model):
            return None  # its builder reads the weights (from_pretrained) to know the shapes
        with torch.device("meta"):
            return self._build()

    def _check_own_tokenizer(self, vocab: int) -> None:
        """A pretrained model reads its own tokenizer's ids: same vocabulary size, not renumbered."""
        name, data = self.cfg.model.name, self.data
        if data.vocab_map is not None:
            raise GrassError(f"model {name} is pretrained on its tokenizer's own token ids, but dataset.compact_vocab="
                             f"true renumbered them to the {data.vocab_size} tokens the blocks use; set "
                             "dataset.compact_vocab=false")
        if vocab != data.vocab_size:
            raise GrassError(
                f"model {name} is pretrained with a {vocab}-token vocabulary but dataset {data.name} "
                f"was tokenized with a {data.vocab_size}-token tokenizer ({data.tokenizer_name or 'GPT-2 BPE'}); "
                "leave dataset.tokenizer at its default (it follows model.tokenizer, the model's own)"
            )

    def prepare(self, ctx) -> None:
        if self._base is not None:
            return
        model = self._build()
        if not self.pretrains_base:
            why = "pretrained model" if is_pretrained(self.cfg.model) else "no pretrain blocks"
            log.info(
                "%s: subset models fine-tune from the %s builder's weights%s",
                why,
                self.cfg.model.name,
                f" ({self.data.n_pretrain} pretrain blocks unused)" if self.data.n_pretrain else "",
            )
            self._base = model
            return
        path = self.base_path(ctx)
        with artifact_lock(path):  # a concurrent run pretraining the same base: wait, then reuse it
            if artifact_ready(path):
                model.load_state_dict(
                    load_artifact(path, self.base_settings(), hint="rerun to pretrain the base again")
                )
            else:
                model = self._pretrain(ctx, model)
                save_artifact(model.state_dict(), path, self.base_settings(), kind="pretrained base")
        self._base = model.eval()
        ctx.metrics["pretrain/query_loss"] = float(self.query_losses(self._base, ctx.device).mean())
        log.info("base model %s: mean query token loss %.3f", path, ctx.metrics["pretrain/query_loss"])

    def _pretrain(self, ctx, model: nn.Module) -> nn.Module:
        pre = self.cfg.pretrain
        seed = derive_seed(self.cfg.seed, "pretrain")
        L.seed_everything(seed % (2**31), workers=True, verbose=False)
        log.info(
            "pretraining the %s base on %d blocks for %d epochs", self.cfg.model.name, self.data.n_pretrain, pre.epochs
        )
        module = CausalLMModule(
            model, lr=pre.lr, weight_decay=pre.weight_decay, schedule=pre.schedule, warmup_steps=pre.warmup_steps
        )
        loader = DataLoader(
            self.data.pretrain_dataset(), batch_size=pre.batch_size, shuffle=True, generator=generator(seed, "loader")
        )
        with ctx.timed("time/pretrain_s"):
            lightning_fit(ctx, module, loader, pre.epochs, progress_bar=True)
        return model.cpu().eval()

    def _fresh(self) -> nn.Module:
        if self._base is None:
            raise GrassError("the base model is not prepared; the finetune stage prepares it")
        return copy.deepcopy(self._base)

    def base_model(self, ctx) -> nn.Module:
        """A copy of the model fine-tuning starts from (pretrained weights, or grass's pretrained base)."""
        self.prepare(ctx)
        return self._fresh().eval()

    def train_one(self, ctx, seed: int, rows: torch.Tensor) -> nn.Module:
        self.prepare(ctx)
        L.seed_everything(seed % (2**31), workers=True, verbose=False)
        model = self._fresh()
        ft = self.cfg.finetune
        module = CausalLMModule(model, lr=ft.lr, weight_decay=ft.weight_decay, schedule=ft.schedule)
        loader = DataLoader(
            self.data.train_dataset(rows), batch_size=ft.batch_size, shuffle=True, generator=generator(seed, "loader")
        )
        lightning_fit(ctx, module, loader, ft.epochs)
        return model.cpu().eval()

    def load(self, ctx, path: Path) -> nn.Module:
        self.prepare(ctx)
        model = self._fresh()
        model.load_state_dict(load_artifact(path, ctx.models_settings(), hint=FINETUNE_HINT))
        return model.eval()

    @torch.no_grad()
    def _per_block(self, model: nn.Module, kind: str, device: torch.device) -> torch.Tensor:
        model.eval()
        target = LMTarget(kind)
        return torch.cat(
            [
                target(model, b).float().cpu()
                for b in self.batches("query", self.cfg.hardware.capture_batch_size, device)
            ]
        )

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
            yield {k: v.to(device) for k, v in lm_batch(ids[i : i + batch_size], mask[i : i + batch_size]).items()}
