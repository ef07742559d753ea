"""The Task interface shared stages call, and the one Lightning fit every task trains with."""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from grass.errors import GrassError
from grass.seeding import generator
from grass.targets import Target

log = logging.getLogger(__name__)


class Task(ABC):
    """One dataset + model family.  Train rows are selected with bool masks [n_train]."""

    def __init__(self, cfg: DictConfig, data) -> None:
        self.cfg, self.data = cfg, data

    @property
    def n_train(self) -> int:
        return self.data.n_train

    @property
    def n_query(self) -> int:
        return self.data.n_query

    def fingerprint_extra(self) -> dict:
        """Config beyond dataset/model/finetune that the trained models depend on (e.g. base pretraining)."""
        return {}

    def prepare(self, ctx) -> None:  # noqa: B027 (an optional hook: most tasks need nothing prepared)
        """Make what every model training starts from (e.g. a pretrained base); idempotent."""

    @abstractmethod
    def skeleton(self) -> nn.Module | None:
        """The model's architecture on the meta device (parameter shapes only: no weights, no memory), or None
        when only loading the weights gives it (a pretrained model). Up-front checks read its shapes."""

    @abstractmethod
    def train_one(self, ctx, seed: int, rows: torch.Tensor) -> nn.Module:
        """A model trained on the train rows selected by `rows` (bool [n_train]), on the CPU, in eval mode."""

    def ensemble_refusal(self) -> str | None:
        """Why `train_many` cannot train this task's models together (grass.tasks.ensemble_fit), or None when it
        can. Default: it cannot (tasks opt in)."""
        return f"{type(self).__name__} trains one model per Lightning Trainer"

    def train_many(self, ctx, seeds: list[int], rows: list[torch.Tensor]) -> list[nn.Module]:
        """Models trained together, one per (seed, bool [n_train] mask), each as train_one would train it up to
        floating-point order; only where ensemble_refusal() is None. Masks of one call select equally many rows."""
        raise NotImplementedError(self.ensemble_refusal())

    @abstractmethod
    def load(self, ctx, path: Path) -> nn.Module:
        """A trained model from its state-dict file, in eval mode."""

    @abstractmethod
    def query_outputs(self, model: nn.Module, device: torch.device) -> torch.Tensor:
        """Ground-truth output of the model on every query: [n_query] float32, no grad.

        It is `self.target("margin").value` over `self.batches("query", ...)`: the same f attribution
        differentiates (one definition per task)."""

    @abstractmethod
    def target(self, kind: str) -> Target:
        """The task's output function f(model, batch) -> [B] for kind "loss" | "margin" (grass.targets.Target).

        Linear capture, flat capture (torch.func vmap(grad) over the batch dimension), the ground truth and
        TRAK's weights (`Target.trak_weight`, Q = 1 - p) all use it. It must follow grass.targets' contract:
        vmappable `value` (the model called only as `model(...)`, no data-dependent Python control flow, checks
        in `check`), examples independent in eval mode. Classification: grass.capture.linear.ClassifierTarget
        (margin of the true class); language model: LMTarget (block margin of the mean token log-prob)."""

    def train_target(self, kind: str, output: str = "query") -> Target:
        """The output function differentiated for train examples (tda.train_output).

        output="query": the query's own, `target(kind)` (SPEC 1.2). output="sequence": for a task whose query
        output is one position of a sequence (music: the last event), the whole train sequence's; tasks without
        such an output (classification: one output; language-model blocks: already the whole block) raise
        GrassError."""
        if output == "query":
            return self.target(kind)
        raise GrassError(f"tda.train_output={output!r}: {type(self).__name__} attributes one output per example, "
                         "the one its queries use; 'sequence' is for tasks whose query output is one position of a "
                         "sequence (music windows); use tda.train_output=query")

    @abstractmethod
    def batches(self, side: str, batch_size: int, device: torch.device,
                rows: torch.Tensor | None = None) -> Iterator[Any]:
        """Batches of the `train` or `query` examples, in order, as `target` reads them, on `device`.

        A batch is a tuple of tensors (x [B, ...], y [B]) or a dict of tensors ({input_ids [B, T], ...}), every
        tensor with the batch dimension first (flat capture slices examples out of each).
        rows: LongTensor of example numbers to take instead of all of them (in that order)."""


def fit_on_rows(ctx, seed: int, build, make_module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """Train build() (seeded by `seed`) through make_module(model) on the tensors x, y (already the selected rows),
    shuffled by a generator of the same seed, for finetune.epochs; the model on the CPU in eval mode."""
    L.seed_everything(seed % (2**31), workers=True, verbose=False)
    model = build()
    ft = ctx.cfg.finetune
    loader = DataLoader(TensorDataset(x, y), batch_size=ft.batch_size, shuffle=True,
                        generator=generator(seed, "loader"))
    lightning_fit(ctx, make_module(model), loader, ft.epochs)
    return model.cpu().eval()


def lightning_fit(ctx, module: L.LightningModule, loader, epochs: int, progress_bar: bool | None = None) -> None:
    """Fit `module` with the hardware group's Lightning settings, quietly (one Trainer per model)."""
    hw = ctx.cfg.hardware
    with _quiet_lightning():  # the Trainer announces its accelerator when built, so build it inside too
        trainer = L.Trainer(max_epochs=epochs, accelerator=hw.accelerator, devices=hw.devices, strategy=hw.strategy,
                            precision=hw.precision, logger=False, enable_checkpointing=False,
                            enable_model_summary=False, default_root_dir=str(ctx.run_dir),
                            enable_progress_bar=ctx.cfg.finetune.progress_bar if progress_bar is None else progress_bar)
        trainer.fit(module, loader)


class _quiet_lightning:
    """Lightning announces its accelerator for every Trainer; with 60 small models that drowns the log."""

    def __enter__(self):
        self._loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # lightning 2.6 on torch 2.13, once per fit

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)
