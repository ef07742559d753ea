"""Stage `groundtruth`: the output function (true-class margin) of every subset model on every query."""

import logging

import torch

from grass.io import atomic_save, load_checked
from grass.models.build import load_classifier
from grass.outputs import margin
from grass.stages.context import RunContext
from grass.stages.finetune import subset_model_path

log = logging.getLogger(__name__)


@torch.no_grad()
def query_margins(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """[n_query] margins of one model in eval mode."""
    model.eval()
    return torch.cat([margin(model(x[i : i + batch_size]), y[i : i + batch_size]) for i in range(0, len(y), batch_size)])


def run_groundtruth(ctx: RunContext) -> torch.Tensor:
    """Float [M, n_query]; rows already computed are read back, missing subset models are an error."""
    path = ctx.groundtruth_dir() / "margins.pt"
    count = ctx.cfg.lds.num_subsets
    stored = load_checked(path)["margins"] if path.exists() else torch.zeros(0, ctx.data.n_query)
    if len(stored) < count:
        rows = []
        for s in range(len(stored), count):
            model = load_classifier(ctx.cfg.model, ctx.data, subset_model_path(ctx.models_dir(), s))
            rows.append(query_margins(model, ctx.data.x_query, ctx.data.y_query))
        stored = torch.cat([stored, torch.stack(rows)])
        atomic_save({"margins": stored}, path)
        log.info("groundtruth: %d new rows written to %s", len(rows), path)
    truth = stored[:count]
    ctx.metrics["groundtruth/margin_mean"] = float(truth.mean())
    ctx.results["groundtruth"] = truth
    return truth
