"""What turns examples into the store's compressed features: per linear layer (factorized compressors, any
task) or one flat block of whole-model gradients (flat compressors, any task), of the attributed model(s).

Each checkpoint c uses its seeds exactly as pipeline=lds builds them (grass.stages.attribute_linear /
attribute_flat), so the features, and hence the scores, agree with the in-memory pipeline's. With
tda.num_checkpoints = C > 1 the blocks of checkpoint c are named "ckpt<c>/<block>" (one store row holds every
checkpoint's features side by side); with one checkpoint they keep their own names.
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
from grass.errors import GrassError
from grass.seeding import derive_seed
from grass.staged.features import capture_rows, check_rows_finite, example_labels
from grass.staged.model import attribution_model, layer_compressors
from grass.stages.attribute_flat import flat_features
from grass.stages.context import RunContext
from grass.stages.selective import compressor_node


class Featurizer(Protocol):
    blocks: dict[str, int]  # {block: K_block}, in store order

    def rows(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """{block: [len(rows), K_block]} float32 on the CPU of the `side` ("train" | "query") examples `rows`;
        GrassError naming the first example whose features are not finite."""


class LinearFeaturizer:
    """Per-layer features through LinearCapture (factorized compressors, SPEC 2.1)."""

    def __init__(self, ctx: RunContext, model: nn.Module, checkpoint: int = 0) -> None:
        compressors = layer_compressors(ctx, model, checkpoint)
        self.ctx, self.model = ctx, model
        self.capture = LinearCapture(model, ctx.task.target(ctx.cfg.tda.target), list(ctx.cfg.capture.layers),
                                     compressors)
        self.blocks = {name: comp.feature_dim for name, comp in compressors.items()}

    def rows(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return capture_rows(self.ctx, self.capture, side, rows)


class FlatFeaturizer:
    """Whole-model per-example gradients compressed by a flat compressor (SPEC 2.2), one block FLAT_BLOCK."""

    def __init__(self, ctx: RunContext, model: nn.Module, checkpoint: int = 0) -> None:
        self.ctx, self.model = ctx, model
        self.compressor = build_compressor(compressor_node(ctx), in_dim=num_params(model), out_dim=ctx.cfg.proj_dim,
                                           seed=derive_seed(ctx.cfg.seed, "flat", "checkpoint", checkpoint))
        self.blocks = {FLAT_BLOCK: int(self.compressor.out_dim)}

    def rows(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = flat_features(self.ctx, self.model, self.compressor, side, rows).float().cpu()
        check_rows_finite(FLAT_BLOCK, feats, example_labels(side, rows))
        return {FLAT_BLOCK: feats}


class CheckpointFeaturizer:
    """The featurizers of checkpoints 0 .. C-1 side by side (blocks named as in the module docstring)."""

    def __init__(self, parts: list[LinearFeaturizer | FlatFeaturizer]) -> None:
        self.parts = parts
        self.prefixes = [""] if len(parts) == 1 else [f"ckpt{c}/" for c in range(len(parts))]
        self.blocks = {prefix + name: dim for prefix, part in zip(self.prefixes, parts)
                       for name, dim in part.blocks.items()}

    @property
    def models(self) -> list[nn.Module]:
        return [part.model for part in self.parts]

    @property
    def capture(self) -> LinearCapture:
        """The LinearCapture of a single linear-layer featurizer (prompt queries); GrassError otherwise."""
        if len(self.parts) != 1 or not isinstance(self.parts[0], LinearFeaturizer):
            raise GrassError("prompt queries (store.prompts_dir) need one language model with a factorized compressor")
        return self.parts[0].capture

    def rows(self, side: str, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {prefix + name: feats for prefix, part in zip(self.prefixes, self.parts)
                for name, feats in part.rows(side, rows).items()}


def store_featurizer(ctx: RunContext) -> CheckpointFeaturizer:
    """The featurizer of this config's compressor over the attributed model(s) (grass.staged.model)."""
    kind = LinearFeaturizer if is_factorized(ctx.cfg.compressor) else FlatFeaturizer
    return CheckpointFeaturizer([kind(ctx, attribution_model(ctx, c), c) for c in range(ctx.cfg.tda.num_checkpoints)])
