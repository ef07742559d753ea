"""Features for factorized compressors: linear-layer capture of each checkpoint, one block per layer.

Every selected nn.Linear gets its own FactorizedCompressor (per-layer K = proj_dim, seeds derived from
the layer name); capture never builds a layer's full per-example gradient. Compression time is measured
inside capture (time/compress_{train,query}_s), apart from the forward/backward time (time/capture_*_s),
after one untimed warm-up call per layer (kernel loading, dense matrix drawing).
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from grass.attribute.blockwise import BlockwiseAttributor
from grass.attribute.sources import InMemoryFeatures
from grass.capture.linear import LinearCapture
from grass.compress.factorized import FactorizedCompressor
from grass.fingerprint import fingerprint
from grass.model_files import checkpoint_path
from grass.run_compressors import build_layer_compressors
from grass.run_context import RunContext
from grass.seeding import derive_seed

log = logging.getLogger(__name__)


class _TimedCompressor:
    """A FactorizedCompressor whose calls add their wall time to ctx.metrics[self.key]."""

    def __init__(self, inner: FactorizedCompressor, ctx: RunContext) -> None:
        self.inner, self.ctx, self.key = inner, ctx, "time/compress_s"

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, a, delta, token_mask=None):
        with self.ctx.timed(self.key):
            return self.inner(a, delta, token_mask)


def _collect(ctx: RunContext, capture: LinearCapture, timed: dict, side: str) -> dict[str, torch.Tensor]:
    """{layer: [N, K_l]} features of every `side` example."""
    for t in timed.values():
        t.key = f"time/compress_{side}_s"
    batch_size = ctx.cfg.hardware.capture_batch_size
    n = ctx.task.n_train if side == "train" else ctx.task.n_query
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in timed}
    batches = ctx.task.batches(side, batch_size, ctx.device)
    with ctx.timed(f"time/capture_{side}_s"):
        # inner bar: cleared when done, and off when stderr is not a terminal (logs keep only the outer bar)
        for batch in tqdm(batches, total=-(-n // batch_size), desc=f"{side} capture", unit="batch", leave=False,
                          disable=None):
            for name, rows in capture.capture(batch).items():
                parts[name].append(rows.detach())
    return {name: torch.cat(rows) for name, rows in parts.items()}


def add_linear_checkpoints(ctx: RunContext, attributor: BlockwiseAttributor) -> None:
    """Fill the blockwise attributor with every checkpoint's per-layer train and query features."""
    cfg = ctx.cfg
    target = ctx.task.target(cfg.tda.target)
    for c in tqdm(range(cfg.tda.num_checkpoints), desc="checkpoints", unit="ckpt"):
        model = ctx.task.load(ctx, checkpoint_path(ctx.models_dir(), c)).to(ctx.device)
        seed = derive_seed(cfg.seed, "linear", "checkpoint", c)
        compressors = build_layer_compressors(ctx, model, seed)
        timed = {name: _TimedCompressor(comp, ctx) for name, comp in compressors.items()}
        capture = LinearCapture(model, target, list(cfg.capture.layers), timed)
        train = _collect(ctx, capture, timed, "train")
        query = _collect(ctx, capture, timed, "query")
        with ctx.timed("time/precondition_s"):
            attributor.add_source(InMemoryFeatures(train, query))
    stage2 = [comp.stage2 for comp in compressors.values() if comp.stage2 is not None]
    ctx.metrics.update({
        "model/num_params": sum(p.numel() for p in model.parameters()),
        "compress/layers": len(compressors),
        "compress/feature_dim_total": sum(comp.feature_dim for comp in compressors.values()),
        "compress/sides": {name: [comp.k_out, comp.k_in] for name, comp in compressors.items()},
        "compress/backend": getattr(stage2[0], "backend_used", None) if stage2 else None,
        "compress/fingerprint": fingerprint({n: comp.fingerprint() for n, comp in compressors.items()}),
    })
    log.info("linear capture: %d layers, %d features per example", len(compressors),
             ctx.metrics["compress/feature_dim_total"])
