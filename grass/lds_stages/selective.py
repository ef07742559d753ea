"""Stage `selective_mask` (SPEC 4): learn the masks a selective compressor reads, from checkpoint gradients.

Runs only for compressors that use a learned mask (their mask node has `expected_fingerprint`): flat ones
(selective_mask, grass_sm) learn one mask from whole-model gradients of the task's target (any task: classifier,
language model); factorized ones (fact_sm, factgrass_sm) learn one mask per linear layer and side from each
example's materialized layer gradient, at the side widths the compressor will ask for. Masks are artifacts keyed by
the trained models and the learning hyperparameters, reused when they exist. Every learned mask is then compared
with random masks of the same size on held-out train rows (`selective/heldout_*` metrics).
"""

import logging
from pathlib import Path

import torch

from grass.artifacts import artifact_lock, artifact_ready
from grass.capture.flat import num_params
from grass.capture.linear import layer_dims
from grass.compress.factorized import is_factorized, node_side_widths
from grass.compress.selective import required_mask_size
from grass.errors import GrassError
from grass.model_files import checkpoint_path
from grass.run_compressors import expected_mask_fingerprint, mask_node, uses_learned_mask
from grass.run_context import RunContext
from grass.seeding import generator
from grass.selective.artifact import load_mask, mask_path, save_result
from grass.selective.gradsets import LayerGrads
from grass.selective.heldout import heldout_grams
from grass.selective.layer_grads import iter_layer_grads
from grass.selective.learn import MaskResult, learn_mask

log = logging.getLogger(__name__)


def _learn(ctx: RunContext, grads, k) -> MaskResult:
    sm = ctx.cfg.selective_mask
    return learn_mask(grads, k, lr=sm.lr, reg=sm.reg, epochs=sm.epochs, log_every=sm.log_every,
                      early_stop=sm.early_stop, seed=ctx.cfg.seed, temperature=sm.temperature,
                      query_fraction=sm.query_fraction, batch_size=sm.batch_size, stop_on=sm.stop_on,
                      init=sm.init, relaxation=sm.relaxation)


def _rows(ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(learning rows, held-out rows): disjoint seeded subsets of the train examples, each sorted."""
    sm, n = ctx.cfg.selective_mask, ctx.task.n_train
    perm = torch.randperm(n, generator=generator(ctx.cfg.seed, "selective_mask", "rows"))
    n_learn = min(sm.n_rows, n)
    return perm[:n_learn].sort().values, perm[n_learn:n_learn + sm.n_heldout].sort().values


def _log_curve(ctx: RunContext, result: MaskResult, prefix: str) -> None:
    for point in result.curve:
        ctx.tracker.log({f"{prefix}/spearman": point.spearman, f"{prefix}/spearman_topk": point.spearman_topk,
                         f"{prefix}/loss": point.loss, f"{prefix}/epoch": point.epoch})


def _record_heldout(ctx: RunContext, grams, key: str) -> dict:
    fid = grams.fidelity()
    log.info("selective mask %s: held-out Spearman learned %.4f vs random %.4f (%s)", key, fid["learned"],
             fid["random_mean"], ", ".join(f"{r:.4f}" for r in fid["random"]))
    return fid


def run_selective_mask(ctx: RunContext) -> None:
    cfg = ctx.cfg
    if not uses_learned_mask(cfg):
        raise GrassError(f"stage=selective_mask needs a compressor with a learned mask (selective_mask, grass_sm, "
                         f"fact_sm, factgrass_sm), not {cfg.compressor.name}")
    model = ctx.task.load(ctx, checkpoint_path(ctx.models_dir(), cfg.selective_mask.checkpoint)).to(ctx.device)
    learn_rows, heldout_rows = _rows(ctx)
    # one learner per mask folder at a time: a concurrent run waits, then reuses what this one learned
    with artifact_lock(Path(mask_node(cfg.compressor)["mask_dir"]) / "learning"):
        if is_factorized(cfg.compressor):
            _run_layers(ctx, model, learn_rows, heldout_rows)
        else:
            _run_flat(ctx, model, learn_rows, heldout_rows)


def _flat_grads(ctx: RunContext, model, rows: torch.Tensor) -> torch.Tensor:
    """Whole-model gradients [len(rows), p] of the task's train-side target on the train examples `rows` (any task)."""
    from grass.lds_stages.attribute_flat import flat_rows  # (attribute_flat imports this module)

    return torch.cat([g for _, g in flat_rows(ctx, model, "train", rows, progress="selective-mask gradients")])


def _run_flat(ctx: RunContext, model, learn_rows: torch.Tensor, heldout_rows: torch.Tensor) -> None:
    cfg = ctx.cfg
    p = num_params(model)
    k = required_mask_size(cfg.compressor, p, cfg.proj_dim)
    fp = expected_mask_fingerprint(ctx)
    path = mask_path(cfg.compressor.mask_dir, k)
    if artifact_ready(path):
        indices = load_mask(path, fp, p, k)  # a mismatched file is an error naming the differing keys
        log.info("selective_mask: reusing %s", path)
    else:
        with ctx.timed("time/selective_mask_s"):
            result = _learn(ctx, _flat_grads(ctx, model, learn_rows).to(ctx.device), k)
        save_result(cfg.compressor.mask_dir, "flat", result, p, fp)
        _log_curve(ctx, result, "selective")
        ctx.metrics.update({"selective/epochs_run": result.epochs_run, "selective/stopped_early": result.stopped_early,
                            "selective/selected_epoch": result.selected_epoch,
                            "selective/curve": [list(pt) for pt in result.curve]})
        indices = result.indices
    if len(heldout_rows) >= 5:
        grams = heldout_grams(_flat_grads(ctx, model, heldout_rows).to(ctx.device), indices, cfg.seed, "flat")
        _store_heldout(ctx, {"flat": _record_heldout(ctx, grams, "flat")}, None)
    else:
        log.info("selective mask: %d held-out rows; no held-out comparison (selective_mask.n_heldout)",
                 len(heldout_rows))


def _run_layers(ctx: RunContext, model, learn_rows: torch.Tensor, heldout_rows: torch.Tensor) -> None:
    """One mask per linear layer and side, learned from the layer gradients G [N, O, I'] of the learning rows."""
    cfg, sm = ctx.cfg, ctx.cfg.selective_mask
    directory, fp = mask_node(cfg.compressor)["mask_dir"], expected_mask_fingerprint(ctx)
    dims = layer_dims(model, list(cfg.capture.layers))  # {layer: (O, I')}
    pairs = {name: node_side_widths(cfg.compressor, i, o, cfg.proj_dim, name) for name, (o, i) in dims.items()}
    masks = {}
    for name, (k_in, k_out) in pairs.items():
        paths = [mask_path(directory, (k_in, k_out), name, side) for side in ("in", "out")]
        if all(artifact_ready(p) for p in paths):
            o, i = dims[name]
            masks[name] = (load_mask(paths[0], fp, i, k_in), load_mask(paths[1], fp, o, k_out))
    todo = {name: dims[name] for name in dims if name not in masks}
    log.info("selective mask: %d of %d layers already learned; learning %d", len(masks), len(dims), len(todo))
    target, budget = ctx.target("train"), int(sm.capture_budget_gb * 1e9)
    batch_size = cfg.hardware.capture_batch_size
    results = {}
    with ctx.timed("time/selective_mask_s"):
        for name, g in iter_layer_grads(model, target, ctx.task, learn_rows, todo, batch_size, ctx.device, budget):
            log.info("selective mask: layer '%s' (O, I') = %s, sides (k_in, k_out) = %s", name, dims[name], pairs[name])
            result = _learn(ctx, LayerGrads(g), pairs[name])
            save_result(directory, name, result, (dims[name][1], dims[name][0]), fp)
            _log_curve(ctx, result, f"selective/{name}")
            masks[name], results[name] = result.indices, result
    ctx.metrics.update(
        {
            "selective/layers_learned": len(results),
            "selective/epochs_run": {n: r.epochs_run for n, r in results.items()},
            "selective/stopped_early": {n: r.stopped_early for n, r in results.items()},
            "selective/selected_epoch": {n: r.selected_epoch for n, r in results.items()},
            "selective/curve": {n: [list(pt) for pt in r.curve] for n, r in results.items()},
        }
    )
    if len(heldout_rows) < 5:
        log.info(
            "selective mask: %d held-out rows; no held-out comparison (selective_mask.n_heldout)", len(heldout_rows)
        )
        return
    if not results:  # the run that learned these masks measured them already
        log.info(
            "selective mask: every mask reused; the held-out comparison is in the metrics of the run that learned them"
        )
        return
    per_layer, total = {}, None
    for name, g in iter_layer_grads(model, target, ctx.task, heldout_rows, dims, batch_size, ctx.device, budget):
        grams = heldout_grams(LayerGrads(g), masks[name], cfg.seed, name)
        per_layer[name] = _record_heldout(ctx, grams, name)
        total = grams if total is None else total.add(grams)
    _store_heldout(ctx, per_layer, _record_heldout(ctx, total, "all layers (summed)"))


def _store_heldout(ctx: RunContext, per_layer: dict, total: dict | None) -> None:
    """selective/heldout_{learned,random}: the whole model's figures (summed layers, or the flat mask)."""
    whole = total if total is not None else next(iter(per_layer.values()))
    ctx.metrics.update(
        {
            "selective/heldout_spearman_learned": whole["learned"],
            "selective/heldout_spearman_random": whole["random_mean"],
            "selective/heldout_spearman_random_draws": whole["random"],
        }
    )
    if total is not None:
        ctx.metrics["selective/heldout_per_layer"] = per_layer
        ctx.metrics["selective/heldout_layer_mean_learned"] = sum(f["learned"] for f in per_layer.values()) / len(
            per_layer
        )
        ctx.metrics["selective/heldout_layer_mean_random"] = sum(f["random_mean"] for f in per_layer.values()) / len(
            per_layer
        )
    ctx.tracker.log(
        {
            "selective/heldout_spearman_learned": whole["learned"],
            "selective/heldout_spearman_random": whole["random_mean"],
        }
    )
