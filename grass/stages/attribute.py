"""Stage `attribute`: per-example gradients of each checkpoint -> compression -> attributor -> scores.

Compression time is measured on its own (time/compress_s covers the train set over all checkpoints),
separate from gradient time, so methods can be compared the way the paper does.
"""

import logging

import torch
from tqdm.auto import tqdm

from grass.attribute.damping import select_damping
from grass.capture.flat import iter_flat_grads, num_params, true_class_probs
from grass.compress.factory import build_compressor
from grass.data.subsets import validation_split
from grass.instantiate import instantiate_node
from grass.lds.metric import lds
from grass.models.build import load_classifier
from grass.seeding import derive_seed
from grass.stages.context import RunContext
from grass.stages.finetune import checkpoint_path, subset_masks
from grass.stages.selective import compressor_node

log = logging.getLogger(__name__)


def _features(ctx: RunContext, model, compressor, x, y, side: str) -> torch.Tensor:
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


def run_attribute(ctx: RunContext, truth: torch.Tensor) -> torch.Tensor:
    """Scores [n_train, n_query] with the damping chosen by LDS on the validation queries."""
    cfg, data = ctx.cfg, ctx.data
    attributor = instantiate_node(cfg.tda.attributor, "tda.attributor")
    sketch_seeds = []
    for c in tqdm(range(cfg.tda.num_checkpoints), desc="checkpoints", unit="ckpt"):
        model = load_classifier(cfg.model, data, checkpoint_path(ctx.models_dir(), c)).to(ctx.device)
        p = num_params(model)
        sketch_seeds.append(derive_seed(cfg.seed, "flat", "checkpoint", c))
        compressor = build_compressor(compressor_node(ctx), in_dim=p, out_dim=cfg.proj_dim, seed=sketch_seeds[-1])
        train = _features(ctx, model, compressor, data.x_train, data.y_train, "train")
        query = _features(ctx, model, compressor, data.x_query, data.y_query, "query")
        weight = 1.0 - true_class_probs(model, data.x_train, data.y_train)
        with ctx.timed("time/precondition_s"):
            attributor.add_checkpoint(train, query, train_weight=weight, num_params=p)
    ctx.metrics.update({"model/num_params": p, "compress/out_dim": compressor.out_dim,
                        "compress/backend": getattr(compressor, "backend_used", None),
                        "compress/fingerprint": str(compressor.fingerprint()), "compress/sketch_seeds": sketch_seeds})
    ctx.metrics["time/compress_s"] = ctx.metrics.get("time/compress_train_s", 0.0)

    masks = subset_masks(ctx)
    val_idx, _ = validation_split(data.n_query, cfg.lds.val_fraction, cfg.seed)
    grid = list(cfg.damping_grid) if cfg.tda.damping != "none" else []
    with ctx.timed("time/damping_search_s"):
        chosen, curve = select_damping(attributor, grid, val_idx,
                                       lambda s: lds(s, masks, truth[:, val_idx]).mean)
    for lam, value in curve.items():
        ctx.tracker.log({"damping/lambda": lam, "damping/val_lds": value})
    ctx.metrics["damping/chosen"] = chosen
    ctx.metrics["damping/val_lds"] = {str(k): v for k, v in curve.items()}
    with ctx.timed("time/score_s"):
        scores = attributor.scores(chosen)
    log.info("attribute: damping %s chosen on %d validation queries", chosen, len(val_idx))
    ctx.results["scores"] = scores
    return scores
