"""Features for whole-model (flat) compressors: per-example gradients of each checkpoint, compressed.

Any task: the gradient is of the task's own target (Task.target(tda.target), grass.targets; train examples:
Task.train_target(tda.target, tda.train_output); RunContext.target) over the task's
batches, by torch.func over every trainable parameter, or as Linear outer products for a linear stack
(grass.capture.flat; the path is logged and in metrics as grad/path), chunked under hardware.grad_memory_gb.
TRAK's weights Q = 1 - p come from the same target (Target.trak_weight).
Compression time is measured on its own (time/compress_{train,query}_s), apart from gradient time, as the
paper compares methods.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from grass.attribute.sources import InMemoryFeatures
from grass.capture.flat import (
    LAYERWISE,
    describe_grad_path,
    grad_path,
    grad_sizes,
    iter_flat_grads,
    num_params,
    trak_weights,
)
from grass.compress.factory import build_compressor
from grass.hardware import small_matrix_threads, torch_threads
from grass.model_files import checkpoint_path
from grass.run_compressors import compressor_node
from grass.run_context import RunContext
from grass.seeding import derive_seed
from grass.validate import check_feature_memory, check_proj_dim

log = logging.getLogger(__name__)
_SAID: set[str] = set()


def flat_rows(ctx: RunContext, model, side: str, rows: torch.Tensor | None = None, progress: str | bool = False):
    """Yield (start, [b, p]) per-example gradients of the task's target over the `side` examples (or `rows`)."""
    cfg = ctx.cfg
    batch, chunk = grad_sizes(cfg.hardware, num_params(model))
    said = describe_grad_path(model)
    if said not in _SAID:  # once per process and kind of model, not per checkpoint and side
        _SAID.add(said)
        tda = cfg.tda
        log.info("flat gradients: %s; %s of the queries, train examples through %s (tda.train_output=%s)", said,
                 tda.target, "the same" if tda.get("train_output", "query") == "query" else "their whole sequence's",
                 tda.get("train_output", "query"))
    n = len(rows) if rows is not None else (ctx.task.n_train if side == "train" else ctx.task.n_query)
    return iter_flat_grads(model, ctx.target(side), ctx.task.batches(side, batch, ctx.device, rows),
                           chunk_size=chunk, progress=progress, total=-(-n // batch))


def flat_features(ctx: RunContext, model, compressor, side: str, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Compressed per-example gradients [N, k] of one model, timing gradients and compression apart."""
    out = []
    grads = flat_rows(ctx, model, side, rows, progress=f"{side} gradients")
    # layer-wise gradients are small matrices: hardware.small_matrix_threads; compression keeps the process's threads
    threads = small_matrix_threads(ctx.cfg.hardware) if grad_path(model) == LAYERWISE else None
    if threads:
        ctx.metrics["hardware/small_matrix_threads"] = threads
    while True:
        with ctx.timed("time/grad_s"), torch_threads(threads):
            item = next(grads, None)
        if item is None:
            break
        with ctx.timed(f"time/compress_{side}_s"):
            out.append(compressor(item[1].to(ctx.device)).cpu())
    return torch.cat(out)


def train_weights(ctx: RunContext, model, rows: torch.Tensor | None = None) -> torch.Tensor:
    """TRAK's Q = 1 - p of every train example (or `rows`) under the task's target -> [N] CPU float32."""
    cfg = ctx.cfg
    batch, chunk = grad_sizes(cfg.hardware, num_params(model))
    return trak_weights(model, ctx.target("train"), ctx.task.batches("train", batch, ctx.device, rows),
                        chunk_size=chunk)


def add_flat_checkpoints(ctx: RunContext, attributor) -> None:
    """Fill `attributor` with every checkpoint's compressed train and query gradients."""
    cfg = ctx.cfg
    sketch_seeds = []
    for c in tqdm(range(cfg.tda.num_checkpoints), desc="checkpoints", unit="ckpt"):
        model = ctx.task.load(ctx, checkpoint_path(ctx.models_dir(), c)).to(ctx.device)
        check_proj_dim(cfg, model)  # a pretrained model's p is known only now
        ctx.metrics["grad/path"] = grad_path(model)
        p = num_params(model)
        sketch_seeds.append(derive_seed(cfg.seed, "flat", "checkpoint", c))
        compressor = build_compressor(compressor_node(ctx), in_dim=p, out_dim=cfg.proj_dim, seed=sketch_seeds[-1])
        if c == 0:
            check_feature_memory(cfg.tda.num_checkpoints, ctx.task.n_train + ctx.task.n_query, compressor.out_dim)
        train = flat_features(ctx, model, compressor, "train")
        query = flat_features(ctx, model, compressor, "query")
        weight = train_weights(ctx, model)
        with ctx.timed("time/precondition_s"):
            attributor.add_source(InMemoryFeatures.flat(train, query), train_weight=weight, num_params=p)
    ctx.metrics.update({"model/num_params": p, "compress/out_dim": compressor.out_dim,
                        "compress/backend": getattr(compressor, "backend_used", None),
                        "compress/fingerprint": str(compressor.fingerprint()), "compress/sketch_seeds": sketch_seeds})
