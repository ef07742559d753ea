"""Stage `finetune`: Lightning trains the M subset models and the checkpoints TRAK averages over.

Models are saved one file each, atomically; a model already on disk is skipped, so a killed run resumes.
"""

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from grass.data.subsets import load_or_draw_subsets
from grass.io import atomic_save
from grass.models.build import build_classifier
from grass.models.classifier_module import ClassifierModule
from grass.seeding import derive_seed, generator
from grass.stages.context import RunContext

log = logging.getLogger(__name__)


def subset_model_path(models_dir: Path, s: int) -> Path:
    return models_dir / f"subset_{s:03d}.pt"


def checkpoint_path(models_dir: Path, c: int) -> Path:
    return models_dir / f"checkpoint_{c:03d}.pt"


def subset_masks(ctx: RunContext) -> torch.Tensor:
    """Bool [M, n_train], stored beside the models."""
    lds = ctx.cfg.lds
    return load_or_draw_subsets(ctx.models_dir() / "subsets.pt", ctx.data.n_train, lds.subset_fraction,
                                ctx.cfg.seed, lds.num_subsets)


def run_finetune(ctx: RunContext) -> None:
    models_dir = ctx.models_dir()
    masks = subset_masks(ctx)
    everything = torch.ones(ctx.data.n_train, dtype=torch.bool)
    jobs = [(subset_model_path(models_dir, s), "subset", s, masks[s]) for s in range(len(masks))]
    jobs += [(checkpoint_path(models_dir, c), "checkpoint", c, everything) for c in range(ctx.cfg.tda.num_checkpoints)]
    todo = [job for job in jobs if not job[0].exists()]
    log.info("finetune: %d of %d models already trained in %s", len(jobs) - len(todo), len(jobs), models_dir)
    with ctx.timed("time/finetune_s"), _quiet_lightning():
        for path, kind, index, mask in tqdm(todo, desc="finetune models", unit="model", disable=not todo):
            atomic_save(_train_one(ctx, kind, index, mask).state_dict(), path)
    ctx.metrics["finetune/models_trained"] = len(todo)


def _train_one(ctx: RunContext, kind: str, index: int, mask: torch.Tensor) -> torch.nn.Module:
    cfg, data = ctx.cfg, ctx.data
    seed = derive_seed(cfg.seed, "train", kind, index)
    L.seed_everything(seed % (2**31), workers=True, verbose=False)
    model = build_classifier(cfg.model, data)
    ft = cfg.finetune
    module = ClassifierModule(model, lr=ft.lr, optimizer=ft.optimizer, weight_decay=ft.weight_decay,
                              momentum=ft.momentum, schedule=ft.schedule)
    loader = DataLoader(TensorDataset(data.x_train[mask], data.y_train[mask]), batch_size=ft.batch_size,
                        shuffle=True, generator=generator(seed, "loader"))
    hw = cfg.hardware
    trainer = L.Trainer(max_epochs=ft.epochs, accelerator=hw.accelerator, devices=hw.devices, strategy=hw.strategy,
                        precision=hw.precision, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=ft.progress_bar, default_root_dir=str(ctx.run_dir))
    trainer.fit(module, loader)
    return model.cpu().eval()


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

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)
