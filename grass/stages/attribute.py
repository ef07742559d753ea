"""Stage `attribute`: features of each checkpoint -> attributor -> scores with the damping chosen on validation.

Flat compressors read whole-model per-example gradients (grass.stages.attribute_flat); factorized ones
read linear-layer captures and score block-diagonally, one block per layer (grass.stages.attribute_linear).
time/compress_s is the compression time over the train set, all checkpoints (kernel builds and loads excluded).
"""

import logging

import torch

from grass.attribute.blockwise import BlockwiseAttributor
from grass.attribute.damping import select_damping
from grass.compress.factorized import is_factorized
from grass.instantiate import instantiate_node
from grass.kernels.dispatch import prepare as prepare_kernels
from grass.stages.attribute_flat import add_flat_checkpoints
from grass.stages.attribute_linear import add_linear_checkpoints
from grass.stages.context import RunContext
from grass.stages.evaluate import record_damping, validation_objective

log = logging.getLogger(__name__)


def make_attributor(cfg, task):
    """The configured attributor: one block per linear layer for factorized compressors, else one flat block.

    Called before any stage runs too, so an impossible combination fails before hours of training.
    """
    if is_factorized(cfg.compressor):
        return BlockwiseAttributor(lambda: instantiate_node(cfg.tda.attributor, "tda.attributor"))
    return instantiate_node(cfg.tda.attributor, "tda.attributor")


def run_attribute(ctx: RunContext, truth: torch.Tensor) -> torch.Tensor:
    """Scores [n_train, n_query] with the damping chosen by LDS on the validation queries."""
    cfg = ctx.cfg
    attributor = make_attributor(cfg, ctx.task)
    prepare_kernels(ctx.device)  # a kernel build or load is setup, not compression time
    if isinstance(attributor, BlockwiseAttributor):
        add_linear_checkpoints(ctx, attributor)
    else:
        add_flat_checkpoints(ctx, attributor)
    ctx.metrics["time/compress_s"] = ctx.metrics.get("time/compress_train_s", 0.0)

    val_idx, evaluate = validation_objective(ctx, truth)
    grid = list(cfg.damping_grid) if cfg.tda.damping != "none" else []
    with ctx.timed("time/damping_search_s"):
        chosen, curve = select_damping(attributor, grid, val_idx, evaluate)
    record_damping(ctx, chosen, curve)
    with ctx.timed("time/score_s"):
        scores = attributor.scores(chosen)
    log.info("attribute: damping %s chosen on %d validation queries", chosen, len(val_idx))
    ctx.results["scores"] = scores
    return scores
