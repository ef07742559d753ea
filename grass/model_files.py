"""The files of a models folder, shared by both pipelines: subset model and checkpoint names, the LDS subsets.

Light to import (no Lightning): the dattri preflight reads the file names before the heavy imports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from grass.data.subsets import load_or_draw_subsets
from grass.dattri_bench.settings import uses_dattri

if TYPE_CHECKING:
    from grass.run_context import RunContext


def subset_model_path(models_dir: Path, s: int) -> Path:
    return models_dir / f"subset_{s:03d}.pt"


def checkpoint_path(models_dir: Path, c: int) -> Path:
    return models_dir / f"checkpoint_{c:03d}.pt"


def subset_masks(ctx: RunContext) -> torch.Tensor:
    """Bool [M, n_train], stored beside the models (finetune.source=dattri: dattri's, imported)."""
    if uses_dattri(ctx.cfg):
        from grass.dattri_bench.importer import dattri_subset_masks

        return dattri_subset_masks(ctx)
    lds = ctx.cfg.lds
    return load_or_draw_subsets(ctx.models_dir() / "subsets.pt", ctx.task.n_train, lds.subset_fraction,
                                ctx.cfg.seed, lds.num_subsets)
