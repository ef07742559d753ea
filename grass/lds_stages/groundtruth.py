"""Stage `groundtruth`: the output function of every subset model on every query (SPEC 5).

Classifiers: margin of the true class; LMs: per-block margin. Rows are appended as models are evaluated.
"""

import logging

import torch
from tqdm.auto import tqdm

from grass.artifacts import artifact_lock, artifact_ready, load_artifact, save_artifact
from grass.dattri_bench.settings import uses_dattri
from grass.model_files import subset_model_path
from grass.run_context import RunContext

log = logging.getLogger(__name__)


def groundtruth_settings(ctx: RunContext) -> dict:
    return {"models": ctx.models_settings(), "n_query": ctx.task.n_query}


def run_groundtruth(ctx: RunContext) -> torch.Tensor:
    """Float [M, n_query]; rows already computed are read back, missing subset models are an error.
    finetune.source=dattri: dattri's ground truth, written by stage finetune, is read as it is."""
    path = ctx.groundtruth_file()
    count = ctx.cfg.lds.num_subsets
    settings = groundtruth_settings(ctx)
    if uses_dattri(ctx.cfg):
        from grass.dattri_bench.importer import dattri_groundtruth

        return _keep(ctx, dattri_groundtruth(ctx, path, settings))
    with artifact_lock(path):
        if artifact_ready(path):
            stored = load_artifact(path, settings, hint="rerun stage=groundtruth to evaluate the models again")[
                "margins"
            ]
        else:
            stored = torch.zeros(0, ctx.task.n_query)
        if len(stored) < count:
            rows = []
            for s in tqdm(range(len(stored), count), desc="ground truth", unit="model"):
                model = ctx.task.load(ctx, subset_model_path(ctx.models_dir(), s)).to(ctx.device)
                rows.append(ctx.task.query_outputs(model, ctx.device).cpu())
            stored = torch.cat([stored, torch.stack(rows)])
            save_artifact({"margins": stored}, path, settings, kind="ground truth")
            log.info("groundtruth: %d new rows written to %s", len(rows), path)
    return _keep(ctx, stored[:count])


def _keep(ctx: RunContext, truth: torch.Tensor) -> torch.Tensor:
    ctx.metrics["groundtruth/margin_mean"] = float(truth.mean())
    ctx.results["groundtruth"] = truth
    return truth
