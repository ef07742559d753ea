"""The stages of pipeline=lds, in order, as a registry; stage=all chains them in one process.

Each stage is run(ctx) -> None; what one stage hands the next (ground truth, scores) travels in ctx.results, and a
stage run alone reads it back from its artifact instead.
"""

from collections.abc import Callable

import torch

from grass.artifacts import load_artifact, save_artifact
from grass.errors import GrassError
from grass.lds_stages.attribute import run_attribute
from grass.lds_stages.evaluate import run_lds
from grass.lds_stages.finetune import run_finetune
from grass.lds_stages.groundtruth import run_groundtruth
from grass.lds_stages.selective import run_selective_mask
from grass.run_compressors import uses_learned_mask
from grass.run_context import RunContext
from grass.run_settings import result_settings


def _selective_mask(ctx: RunContext) -> None:
    # stage=all learns a mask only for compressors that read one; asked for by name, it always runs (and
    # refuses a compressor without a learned mask)
    if ctx.cfg.stage != "all" or uses_learned_mask(ctx.cfg):
        run_selective_mask(ctx)


def _truth(ctx: RunContext) -> torch.Tensor:
    return ctx.results["groundtruth"] if "groundtruth" in ctx.results else run_groundtruth(ctx)


def _scores_path(ctx: RunContext):
    return ctx.run_dir / "scores.pt"


def _attribute(ctx: RunContext) -> None:
    cfg = ctx.cfg
    scores = run_attribute(ctx, _truth(ctx))
    if cfg.save_scores or cfg.stage == "attribute":  # stage=lds later reads them back
        save_artifact({"scores": scores}, _scores_path(ctx), result_settings(cfg), kind="attribution scores")


def _lds(ctx: RunContext) -> None:
    cfg = ctx.cfg
    if "scores" not in ctx.results:  # scores made by any other configuration are refused, keys named
        ctx.results["scores"] = load_artifact(_scores_path(ctx), result_settings(cfg),
                                              hint="run stage=attribute with the same settings first")["scores"]
    run_lds(ctx, ctx.results["scores"], _truth(ctx))
    m = ctx.metrics
    print(f"LDS {m['lds/mean']:.4f} [{m['lds/ci_low']:.4f}, {m['lds/ci_high']:.4f}]  "
          f"{cfg.compressor.name} k={cfg.proj_dim}  compress {m.get('time/compress_s', 0.0):.2f}s  -> {ctx.run_dir}")


LDS_STAGES: dict[str, Callable[[RunContext], None]] = {
    "finetune": run_finetune,
    "selective_mask": _selective_mask,
    "groundtruth": run_groundtruth,
    "attribute": _attribute,
    "lds": _lds,
}


def lds_stages(stage: str) -> list[str]:
    """The pipeline=lds stages `stage` names (all of them for "all"); GrassError for another name."""
    if stage == "all":
        return list(LDS_STAGES)
    if stage not in LDS_STAGES:
        raise GrassError(f"stage={stage!r} is not a stage of pipeline=lds; choose all or one of {list(LDS_STAGES)}")
    return [stage]


def run_lds_stages(ctx: RunContext) -> None:
    """Runs the stages in order; each one's wall time goes to metrics `time/stage/<name>_s` (what bench/ reads)."""
    for name in lds_stages(ctx.cfg.stage):
        with ctx.timed(f"time/stage/{name}_s"):
            LDS_STAGES[name](ctx)
