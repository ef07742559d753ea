"""Features for whole-model (flat) compressors: per-example gradients of each checkpoint, compressed.

Classifiers only (torch.func over every parameter). Compression time is measured on its own
(time/compress_{train,query}_s), apart from gradient time, as the paper compares methods.
"""

import torch
from tqdm.auto import tqdm

from grass.attribute.sources import InMemoryFeatures
from grass.capture.flat import iter_flat_grads, num_params, true_class_probs
from grass.compress.factory import build_compressor
from grass.errors import GrassError
from grass.seeding import derive_seed
from grass.stages.context import RunContext
from grass.stages.finetune import checkpoint_path
from grass.stages.selective import compressor_node
from grass.tasks.classification import ClassificationTask


def flat_features(ctx: RunContext, model, compressor, x, y, side: str) -> torch.Tensor:
    """Compressed per-example gradients [N, k] of one model, timing gradients and compression apart."""
    hw, target = ctx.cfg.hardware, ctx.cfg.tda.target
    rows = []
    grads = iter_flat_grads(model, x, y, target, batch_size=hw.grad_batch_size, chunk_size=hw.grad_chunk_size,
                            progress=f"{side} gradients")
    while True:
        with ctx.timed("time/grad_s"):
            item = next(grads, None)
        if item is None:
            break
        with ctx.timed(f"time/compress_{side}_s"):
            rows.append(compressor(item[1].to(ctx.device)).cpu())
    return torch.cat(rows)


def require_flat_task(cfg, task) -> None:
    """Whole-model gradients exist for classifiers only: anything else gets one clear error."""
    if not isinstance(task, ClassificationTask):
        raise GrassError(f"compressor={cfg.compressor.name} compresses whole-model gradients, which grass computes "
                         f"for classifiers only; for dataset={cfg.dataset.name} choose a factorized compressor "
                         "(logra, factgrass, fact_sjlt, fact_mask) over the linear layers")


def add_flat_checkpoints(ctx: RunContext, attributor) -> None:
    """Fill `attributor` with every checkpoint's compressed train and query gradients."""
    cfg = ctx.cfg
    require_flat_task(cfg, ctx.task)
    data = ctx.data
    sketch_seeds = []
    for c in tqdm(range(cfg.tda.num_checkpoints), desc="checkpoints", unit="ckpt"):
        model = ctx.task.load(ctx, checkpoint_path(ctx.models_dir(), c)).to(ctx.device)
        p = num_params(model)
        sketch_seeds.append(derive_seed(cfg.seed, "flat", "checkpoint", c))
        compressor = build_compressor(compressor_node(ctx), in_dim=p, out_dim=cfg.proj_dim, seed=sketch_seeds[-1])
        train = flat_features(ctx, model, compressor, data.x_train, data.y_train, "train")
        query = flat_features(ctx, model, compressor, data.x_query, data.y_query, "query")
        weight = 1.0 - true_class_probs(model, data.x_train, data.y_train)
        with ctx.timed("time/precondition_s"):
            attributor.add_source(InMemoryFeatures.flat(train, query), train_weight=weight, num_params=p)
    ctx.metrics.update({"model/num_params": p, "compress/out_dim": compressor.out_dim,
                        "compress/backend": getattr(compressor, "backend_used", None),
                        "compress/fingerprint": str(compressor.fingerprint()), "compress/sketch_seeds": sketch_seeds})
