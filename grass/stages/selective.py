"""Stage `selective_mask` (SPEC 4): learn the mask a selective compressor reads, from checkpoint gradients.

Runs only for compressors that use a learned mask (their config has `expected_fingerprint`); the mask is
an artifact keyed by the trained models and the learning hyperparameters, reused when it already exists.
"""

import logging

import torch

from grass.capture.flat import iter_flat_grads, num_params
from grass.compress.selective import required_mask_size
from grass.data.classification import ClassificationData
from grass.errors import GrassError
from grass.instantiate import plain_node
from grass.seeding import generator
from grass.selective.artifact import load_mask, mask_fingerprint, mask_path, save_result
from grass.selective.learn import learn_mask
from grass.stages.context import RunContext
from grass.stages.finetune import checkpoint_path

log = logging.getLogger(__name__)


def uses_learned_mask(cfg) -> bool:
    return "expected_fingerprint" in cfg.compressor


def expected_mask_fingerprint(ctx: RunContext) -> dict:
    sm = ctx.cfg.selective_mask
    return mask_fingerprint(ctx.models_dir().name, sm.checkpoint, ctx.cfg.tda.target, sm, ctx.cfg.seed)


def compressor_node(ctx: RunContext):
    """The compressor config with the mask fingerprint of this run filled in (selective compressors only)."""
    if not uses_learned_mask(ctx.cfg):
        return ctx.cfg.compressor
    return {**plain_node(ctx.cfg.compressor), "expected_fingerprint": expected_mask_fingerprint(ctx)}


def run_selective_mask(ctx: RunContext) -> None:
    cfg, data, sm = ctx.cfg, ctx.data, ctx.cfg.selective_mask
    if not uses_learned_mask(cfg):
        raise GrassError(f"stage=selective_mask needs a compressor with a learned mask (selective_mask, grass_sm), "
                         f"not {cfg.compressor.name}")
    if not isinstance(data, ClassificationData):
        raise GrassError(f"stage=selective_mask learns flat masks from a classifier's whole-model gradients; "
                         f"per-layer masks for dataset={cfg.dataset.name} are not wired yet")
    model = ctx.task.load(ctx, checkpoint_path(ctx.models_dir(), sm.checkpoint)).to(ctx.device)
    p = num_params(model)
    k = required_mask_size(cfg.compressor, p, cfg.proj_dim)
    fp = expected_mask_fingerprint(ctx)
    path = mask_path(cfg.compressor.mask_dir, k)
    if path.exists():
        load_mask(path, fp, p, k)  # a mismatched file is an error naming the differing keys, never overwritten
        log.info("selective_mask: reusing %s", path)
        return
    rows = torch.randperm(data.n_train, generator=generator(cfg.seed, "selective_mask", "rows"))
    rows = rows[: min(sm.n_rows, data.n_train)].sort().values
    grads = torch.cat([g for _, g in iter_flat_grads(model, data.x_train[rows], data.y_train[rows], cfg.tda.target,
                                                     batch_size=cfg.hardware.grad_batch_size,
                                                     chunk_size=cfg.hardware.grad_chunk_size,
                                                     progress="selective-mask gradients")])
    with ctx.timed("time/selective_mask_s"):
        result = learn_mask(grads.to(ctx.device), k, lr=sm.lr, reg=sm.reg, epochs=sm.epochs, log_every=sm.log_every,
                            early_stop=sm.early_stop, seed=cfg.seed, temperature=sm.temperature,
                            query_fraction=sm.query_fraction, batch_size=sm.batch_size, stop_on=sm.stop_on)
    save_result(cfg.compressor.mask_dir, "flat", result, p, fp)
    for point in result.curve:
        ctx.tracker.log({"selective/spearman": point.spearman, "selective/spearman_topk": point.spearman_topk,
                         "selective/loss": point.loss}, step=point.epoch)
    ctx.metrics.update({"selective/epochs_run": result.epochs_run, "selective/stopped_early": result.stopped_early,
                        "selective/curve": [list(p) for p in result.curve]})
