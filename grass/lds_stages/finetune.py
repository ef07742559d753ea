"""Stage `finetune`: Lightning trains the M subset models and the checkpoints attribution runs on.

Models are saved one file each, atomically, with a checksum and the settings that made them
(grass.artifacts); a model already on disk is skipped, so a killed run resumes. Concurrent runs that need
the same models share the work: each takes the models no other run is training (one lock per model file),
then waits for the rest and reuses them. How one model is trained (classifier from scratch, LM fine-tuned
from its base) is the task's business.
"""

import logging
from contextlib import ExitStack

import torch
from filelock import Timeout
from tqdm.auto import tqdm

from grass.artifacts import artifact_lock, artifact_ready, save_artifact
from grass.dattri_bench.settings import uses_dattri
from grass.hardware import small_matrix_threads, world_size
from grass.model_files import checkpoint_path, subset_masks, subset_model_path
from grass.run_context import RunContext
from grass.seeding import derive_seed
from grass.tasks.ensemble_fit import uses_ensemble

log = logging.getLogger(__name__)
HINT = "run stage=finetune (or stage=all) to train it again"


def run_finetune(ctx: RunContext) -> None:
    if uses_dattri(ctx.cfg):  # the paper's own models: imported, not trained
        from grass.dattri_bench.importer import import_benchmark
        from grass.lds_stages.groundtruth import groundtruth_settings

        with ctx.timed("time/finetune_s"):
            import_benchmark(ctx, groundtruth_settings(ctx))
        return
    models_dir = ctx.models_dir()
    masks = subset_masks(ctx)
    everything = torch.ones(ctx.task.n_train, dtype=torch.bool)
    jobs = [(subset_model_path(models_dir, s), "subset", s, masks[s]) for s in range(len(masks))]
    jobs += [(checkpoint_path(models_dir, c), "checkpoint", c, everything) for c in range(ctx.cfg.tda.num_checkpoints)]
    todo = [job for job in jobs if not artifact_ready(job[0])]
    log.info("finetune: %d of %d models already trained in %s", len(jobs) - len(todo), len(jobs), models_dir)
    if todo and world_size(ctx.cfg.hardware) > 1:
        log.info("finetune: %d training processes, each with batch %d: %d examples per optimizer step (the "
                 "world size is part of the models' key)", world_size(ctx.cfg.hardware),
                 ctx.cfg.finetune.batch_size, world_size(ctx.cfg.hardware) * ctx.cfg.finetune.batch_size)
    outcomes = []
    together = uses_ensemble(ctx.cfg, ctx.task)
    ctx.metrics["finetune/trainer"] = "ensemble" if together else "lightning_per_model"
    with ctx.timed("time/finetune_s"):
        if todo:
            ctx.task.prepare(ctx)
        with tqdm(total=len(todo), desc="finetune models", unit="model", disable=not todo) as bar:
            if together and todo:
                outcomes = _train_together(ctx, todo, bar)
                todo = []
            # first pass: the models no other run holds; second pass: wait for the others' and reuse them
            for timeout in (0, -1):
                busy = []
                for job in todo:
                    outcome = _train_locked(ctx, job, timeout)
                    busy += [job] if outcome == "busy" else []
                    outcomes += [] if outcome == "busy" else [outcome]
                    bar.update(outcome != "busy")
                if busy:
                    log.info("finetune: %d models are being trained by another run; waiting for them", len(busy))
                todo = busy
    ctx.metrics["finetune/models_trained"] = outcomes.count("trained")


def _train_locked(ctx: RunContext, job, timeout: float) -> str:
    """Train and save one model under its lock: "trained", "reused" (another run made it meanwhile), or
    "busy" (the lock was held and timeout 0)."""
    path, kind, index, mask = job
    try:
        with artifact_lock(path, timeout=timeout):
            if artifact_ready(path):
                return "reused"
            save_artifact(ctx.task.train_one(ctx, _seed(ctx, job), mask).state_dict(), path, ctx.models_settings(),
                          kind=f"{kind} model")
            return "trained"
    except Timeout:
        return "busy"


def _seed(ctx: RunContext, job) -> int:
    """A model's training seed: its own (kind, index) one, or with finetune.seeds=shared checkpoint 0's for every
    subset model (the other checkpoints keep theirs: TRAK averages over their seeds)."""
    kind, index = job[1], job[2]
    if str(ctx.cfg.finetune.get("seeds", "per_model")) == "shared" and kind == "subset":
        kind, index = "checkpoint", 0
    return derive_seed(ctx.cfg.seed, "train", kind, index)


def _train_together(ctx: RunContext, todo: list, bar) -> list[str]:
    """The ensemble path: lock every model no other run holds, train them in groups of equal row count (one
    task.train_many each), save each model; then wait for the others' models and train any still missing."""
    outcomes, busy = [], []
    with ExitStack() as held:
        mine = []
        for job in todo:
            try:
                held.enter_context(artifact_lock(job[0], timeout=0))
            except Timeout:
                busy.append(job)
                continue
            if artifact_ready(job[0]):
                outcomes.append("reused")
                bar.update()
            else:
                mine.append(job)
        for count in sorted({int(job[3].sum()) for job in mine}):
            group = [job for job in mine if int(job[3].sum()) == count]
            threads = ctx.metrics["hardware/small_matrix_threads"] = small_matrix_threads(ctx.cfg.hardware)
            log.info("finetune: %d models on %d rows each, trained together (ensemble, %s torch threads)",
                     len(group), count, threads)
            outcomes += _train_group(ctx, group)
            bar.update(len(group))
    if busy:
        log.info("finetune: %d models are being trained by another run; waiting for them", len(busy))
    for job in busy:
        with artifact_lock(job[0]):
            outcomes += ["reused"] if artifact_ready(job[0]) else _train_group(ctx, [job])
        bar.update()
    return outcomes


def _train_group(ctx: RunContext, group: list) -> list[str]:
    models = ctx.task.train_many(ctx, [_seed(ctx, job) for job in group], [job[3] for job in group])
    for (path, kind, _, _), model in zip(group, models):
        save_artifact(model.state_dict(), path, ctx.models_settings(), kind=f"{kind} model")
    return ["trained"] * len(group)
