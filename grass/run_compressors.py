"""The compressors of one run, shared by both pipelines and the API: the compressor config with this run's learned-mask
fingerprint filled in, and one FactorizedCompressor per captured linear layer."""

from __future__ import annotations

import torch

from grass.capture.linear import layer_dims
from grass.compress.factorized import FactorizedCompressor, build_factorized, is_factorized
from grass.instantiate import plain_node
from grass.run_context import RunContext
from grass.selective.artifact import mask_fingerprint
from grass.validate import check_proj_dim


def mask_node(compressor) -> dict:
    """The config node that holds mask_dir / expected_fingerprint: the compressor, or a factorized one's side."""
    node = plain_node(compressor)
    if is_factorized(node):
        side = node.get("side")
        return side if isinstance(side, dict) else {}
    return node


def uses_learned_mask(cfg) -> bool:
    return "expected_fingerprint" in mask_node(cfg.compressor)


NOT_IN_FINGERPRINT = ("n_heldout", "capture_budget_gb", "dir")  # settings that do not change the learned mask


def expected_mask_fingerprint(ctx: RunContext) -> dict:
    sm = {k: v for k, v in plain_node(ctx.cfg.selective_mask).items() if k not in NOT_IN_FINGERPRINT}
    tda = ctx.cfg.tda
    return mask_fingerprint(ctx.models_dir().name, sm["checkpoint"], tda.target, sm, ctx.cfg.seed,
                            train_output=tda.get("train_output", "query"))


def compressor_node(ctx: RunContext):
    """The compressor config with the mask fingerprint of this run filled in (selective compressors only)."""
    if not uses_learned_mask(ctx.cfg):
        return ctx.cfg.compressor
    node, fp = plain_node(ctx.cfg.compressor), expected_mask_fingerprint(ctx)
    if is_factorized(node):
        return {**node, "side": {**node["side"], "expected_fingerprint": fp}}
    return {**node, "expected_fingerprint": fp}


def layer_compressors(node, model, patterns, proj_dim: int, seed: int,
                      device: torch.device) -> dict[str, FactorizedCompressor]:
    """{layer name: FactorizedCompressor} for every nn.Linear matching `patterns`, K = proj_dim per layer, warmed up.

    node: a `kind: factorized` compressor config (selective sides already carry their mask fingerprint); seeds are
    derived from `seed` and the layer name (grass.compress.factorized). One untimed call per layer on a zero token
    does the one-time setup (loading the SJLT kernel, drawing and caching a dense Gaussian), so time/compress_s
    measures the per-example cost of every method alike. Used by the attribute stage and grass.api alike.
    """
    dims = layer_dims(model, list(patterns))
    compressors = {name: build_factorized(node, in_dim=i, out_dim=o, proj_dim=proj_dim, seed=seed, layer_name=name)
                   for name, (o, i) in dims.items()}
    for comp in compressors.values():
        comp(torch.zeros(1, 1, comp.in_dim, device=device), torch.zeros(1, 1, comp.grad_dim, device=device))
    return compressors


def build_layer_compressors(ctx: RunContext, model, seed: int) -> dict[str, FactorizedCompressor]:
    """layer_compressors for this run's config (capture.layers, proj_dim, the compressor with its mask)."""
    check_proj_dim(ctx.cfg, model)  # up front too, where the model's shapes were known before loading it
    node = compressor_node(ctx)  # selective sides get this run's mask fingerprint
    return layer_compressors(node, model, list(ctx.cfg.capture.layers), ctx.cfg.proj_dim, seed, ctx.device)
