"""Stage `attribute`: features of each checkpoint -> attributor -> scores with the damping chosen on validation.

Flat compressors read whole-model per-example gradients (grass.lds_stages.attribute_flat); factorized ones
read linear-layer captures and score block-diagonally, one block per layer (grass.lds_stages.attribute_linear).
time/compress_s is the compression time over the train set, all checkpoints (kernel builds and loads excluded).
The preconditioned solves run when scores are asked: time/damping_search_s holds the grid on the validation
queries, time/score_s every query at the chosen damping; time/precondition_s only the adds (checks, references).
"""

import logging

import torch

from grass.attribute.blockwise import BlockwiseAttributor
from grass.attribute.damping import select_damping
from grass.attribute.memory import MB
from grass.compress.factorized import is_factorized
from grass.instantiate import instantiate_node
from grass.kernels.dispatch import prepare as prepare_kernels
from grass.lds.validation import record_damping, validation_objective
from grass.lds_stages.attribute_flat import add_flat_checkpoints
from grass.lds_stages.attribute_linear import add_linear_checkpoints
from grass.run_context import RunContext

log = logging.getLogger(__name__)


def make_attributor(cfg, task):
    """The configured attributor: one block per linear layer for factorized compressors, else one flat block.

    Called before any stage runs too, so an impossible combination fails before hours of training.
    """
    if is_factorized(cfg.compressor):
        return BlockwiseAttributor(lambda: instantiate_node(cfg.tda.attributor, "tda.attributor"))
    return instantiate_node(cfg.tda.attributor, "tda.attributor")


def record_memory(ctx: RunContext, attributor, grid_solver: str | None) -> None:
    """The solvers used and the attributor's peak memory per checkpoint (tensor byte accounting,
    grass.attribute.memory) into the log and metrics (attribute/solver_grid, attribute/solver_scores,
    attribute/peak_mb, attribute/checkpoint_peak_mb)."""
    peaks = [round(b / MB, 1) for b in attributor.checkpoint_peaks]
    ctx.metrics.update({"attribute/solver_grid": grid_solver, "attribute/solver_scores": attributor.last_solver,
                        "attribute/peak_mb": round(attributor.peak_bytes / MB, 1),
                        "attribute/checkpoint_peak_mb": peaks})
    log.info("attribute: solver %s (grid) / %s (scores); attributor peak memory %.0f MB, per checkpoint %s MB "
             "(tensor byte accounting)", grid_solver, attributor.last_solver, attributor.peak_bytes / MB, peaks)


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
        chosen, curve = select_damping(attributor, grid, val_idx, evaluate, search=cfg.damping_search)
    record_damping(ctx, chosen, curve)
    grid_solver = attributor.last_solver
    with ctx.timed("time/score_s"):
        scores = attributor.scores(chosen)
    log.info("attribute: damping %s chosen on %d validation queries", chosen, len(val_idx))
    record_memory(ctx, attributor, grid_solver)
    ctx.results["scores"] = scores
    return scores
