"""What turns examples into the store's compressed features: per linear layer (factorized compressors, any
task) or one flat block of whole-model gradients (flat compressors, classifiers), of the attributed model.

Both use checkpoint 0's seeds exactly as pipeline=lds builds them (grass.stages.attribute_linear /
attribute_flat), so the features, and hence the scores, agree with the in-memory pipeline's.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from grass.attribute.sources import FLAT_BLOCK
from grass.capture.flat import num_params
from grass.capture.linear import LinearCapture
from grass.compress.factorized import is_factorized
from grass.compress.factory import build_compressor
from grass.seeding import derive_seed
from grass.staged.features import capture_rows, check_rows_finite, example_labels
from grass.staged.model import attribution_model, layer_compressors
from grass.stages.attribute_flat import flat_features, require_flat_task
from grass.stages.context import RunContext
from grass.stages.selective import compressor_node


class Featurizer(Protocol):
    blocks: dict[str, int]  # {block: K_block}, in store order

    def rows(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """{block: [len(rows), K_block]} float32 on the CPU of the `side` ("train" | "query") examples `rows`;
        GrassError naming the first example whose features are not finite."""


class LinearFeaturizer:
    """Per-layer features through LinearCapture (factorized compressors, SPEC 2.1)."""

    def __init__(self, ctx: RunContext, model: nn.Module) -> None:
        compressors = layer_compressors(ctx, model)
        self.ctx = ctx
        self.capture = LinearCapture(model, ctx.task.target(ctx.cfg.tda.target), list(ctx.cfg.capture.layers),
                                     compressors)
        self.blocks = {name: comp.feature_dim for name, comp in compressors.items()}

    def rows(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return capture_rows(self.ctx, self.capture, side, rows)


class FlatFeaturizer:
    """Whole-model per-example gradients compressed by a flat compressor (SPEC 2.2), one block FLAT_BLOCK."""

    def __init__(self, ctx: RunContext, model: nn.Module) -> None:
        require_flat_task(ctx.cfg, ctx.task)
        self.ctx, self.model = ctx, model
        self.compressor = build_compressor(compressor_node(ctx), in_dim=num_params(model), out_dim=ctx.cfg.proj_dim,
                                           seed=derive_seed(ctx.cfg.seed, "flat", "checkpoint", 0))
        self.blocks = {FLAT_BLOCK: int(self.compressor.out_dim)}

    def rows(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        data = self.ctx.data
        x, y = (data.x_train, data.y_train) if side == "train" else (data.x_query, data.y_query)
        feats = flat_features(self.ctx, self.model, self.compressor, x[rows], y[rows], side).float().cpu()
        check_rows_finite(FLAT_BLOCK, feats, example_labels(side, rows))
        return {FLAT_BLOCK: feats}


def store_featurizer(ctx: RunContext) -> LinearFeaturizer | FlatFeaturizer:
    """The featurizer of this config's compressor over the attributed model (grass.staged.model)."""
    model = attribution_model(ctx)
    if is_factorized(ctx.cfg.compressor):
        return LinearFeaturizer(ctx, model)
    return FlatFeaturizer(ctx, model)
