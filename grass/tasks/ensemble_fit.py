"""Train many small classifiers at once: the ensemble path of stage finetune (issue #16), and when it applies.

`fit_ensemble` is `grass.tasks.base.fit_on_rows` for M models in one Lightning fit (grass.models.ensemble_module):
member m is seeded, built, shuffled and dropped-out exactly as fit_on_rows would do it alone with seed_m
  - initial weights: L.seed_everything(seed_m), then build();
  - dropout noise: a generator cloned from the global RNG right there (what the lone fit's dropout draws from);
  - data order: a DataLoader over its own rows, shuffle=True, generator(seed_m, "loader"), batch finetune.batch_size
    (the lone fit's loader order);
so the members are the lone models up to floating-point summation order (batched vs single matmuls). Every
member of one fit must have the same number of rows (same batches per epoch): finetune groups them by row count.

`finetune.ensemble`: true | false | null (auto, the default). auto = the ensemble whenever it can train the task's
models (`ensemble_refusal` is None: a classifier whose model is a linear stack, one training process); true where it
cannot is a GrassError before any work. Models trained this way carry `trainer: ensemble` in their models key
(RunContext.models_settings), so they never mix with one-Trainer-per-model ones.

Threads: the fit runs under grass.hardware.small_matrix_threads torch threads (null, the default: the idle CPUs),
restored afterwards.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from grass.errors import GrassError
from grass.hardware import small_matrix_threads, torch_threads, world_size
from grass.models.ensemble_module import EnsembleModule
from grass.seeding import generator
from grass.tasks.base import lightning_fit

log = logging.getLogger(__name__)
ENSEMBLE_TRAINER = "ensemble"


def ensemble_refusal(cfg, task) -> str | None:
    """Why the ensemble cannot train this run's models, or None when it can."""
    reason = task.ensemble_refusal()
    if reason is None and world_size(cfg.hardware) > 1:
        reason = f"hardware.devices={cfg.hardware.devices} trains in several processes (DDP)"
    return reason


def uses_ensemble(cfg, task) -> bool:
    """Whether stage finetune trains this run's models with the ensemble (module docstring); GrassError for
    finetune.ensemble=true where it cannot."""
    mode = cfg.finetune.get("ensemble")
    if str(cfg.finetune.get("source", "grass")) == "dattri" or mode is False:
        return False
    reason = ensemble_refusal(cfg, task)
    if mode is True and reason:
        raise GrassError(f"finetune.ensemble=true: the ensemble cannot train these models: {reason}; use "
                         "finetune.ensemble=null (auto) or false (one Lightning Trainer per model)")
    return reason is None


class EnsembleBatches:
    """Per step, every member's next batch: (x [M, b, ...], y [M, b]); a new shuffled epoch per iteration.

    x, y: all train rows; rows: M LongTensors of equal length (member m's row numbers); loaders: M DataLoaders over
    range(len(rows[m])) yielding member m's positions in its lone-fit order."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, rows: list[torch.Tensor], loaders: list[DataLoader]):
        self.x, self.y, self.rows, self.loaders = x, y, rows, loaders

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self):
        for positions in zip(*self.loaders):
            idx = torch.stack([r[p] for r, p in zip(self.rows, positions)])  # [M, b] row numbers
            yield self.x[idx], self.y[idx]


def fit_ensemble(ctx, seeds: list[int], rows: list[torch.Tensor], build, x: torch.Tensor,
                 y: torch.Tensor) -> list[nn.Module]:
    """Train build()'s model once per seed on rows[m] (bool [n] masks or LongTensors of x's rows, equal counts),
    all at once -> M models on the CPU in eval mode (module docstring for what equals the lone fit)."""
    ft = ctx.cfg.finetune
    index = [r.nonzero().flatten() if r.dtype == torch.bool else r for r in rows]
    if len({len(r) for r in index}) != 1:
        raise GrassError(f"fit_ensemble: the members' row counts differ ({sorted({len(r) for r in index})}); "
                         "train members of equal size together")
    models, generators, loaders = [], [], []
    for seed in seeds:
        L.seed_everything(seed % (2**31), workers=True, verbose=False)
        models.append(build())
        g = torch.Generator()
        g.set_state(torch.get_rng_state())  # the global stream the lone fit's dropout would draw from
        generators.append(g)
        loaders.append(DataLoader(range(len(index[0])), batch_size=ft.batch_size, shuffle=True,
                                  generator=generator(seed, "loader")))
    module = EnsembleModule(models, generators, lr=ft.lr, optimizer=ft.optimizer, weight_decay=ft.weight_decay,
                            momentum=ft.momentum, schedule=ft.schedule)
    with torch_threads(small_matrix_threads(ctx.cfg.hardware)):
        lightning_fit(ctx, module, EnsembleBatches(x, y, index, loaders), ft.epochs)
    return module.members()
