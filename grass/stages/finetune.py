"""Stage `finetune`: Lightning trains the M subset models and the checkpoints attribution runs on.

Models are saved one file each, atomically; a model already on disk is skipped, so a killed run resumes.
How one model is trained (classifier from scratch, LM fine-tuned from its base) is the task's business.
"""

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from grass.data.subsets import load_or_draw_subsets
from grass.io import atomic_save
from grass.seeding import derive_seed
from grass.stages.context import RunContext

log = logging.getLogger(__name__)


def subset_model_path(models_dir: Path, s: int) -> Path:
    return models_dir / f"subset_{s:03d}.pt"


def checkpoint_path(models_dir: Path, c: int) -> Path:
    return models_dir / f"checkpoint_{c:03d}.pt"


def subset_masks(ctx: RunContext) -> torch.Tensor:
    """Bool [M, n_train], stored beside the models."""
    lds = ctx.cfg.lds
    return load_or_draw_subsets(ctx.models_dir() / "subsets.pt", ctx.task.n_train, lds.subset_fraction,
                                ctx.cfg.seed, lds.num_subsets)


def run_finetune(ctx: RunContext) -> None:
    models_dir = ctx.models_dir()
    masks = subset_masks(ctx)
    everything = torch.ones(ctx.task.n_train, dtype=torch.bool)
    jobs = [(subset_model_path(models_dir, s), "subset", s, masks[s]) for s in range(len(masks))]
    jobs += [(checkpoint_path(models_dir, c), "checkpoint", c, everything) for c in range(ctx.cfg.tda.num_checkpoints)]
    todo = [job for job in jobs if not job[0].exists()]
    log.info("finetune: %d of %d models already trained in %s", len(jobs) - len(todo), len(jobs), models_dir)
    with ctx.timed("time/finetune_s"):
        if todo:
            ctx.task.prepare(ctx)
        for path, kind, index, mask in tqdm(todo, desc="finetune models", unit="model", disable=not todo):
            seed = derive_seed(ctx.cfg.seed, "train", kind, index)
            atomic_save(ctx.task.train_one(ctx, seed, mask).state_dict(), path)
    ctx.metrics["finetune/models_trained"] = len(todo)
