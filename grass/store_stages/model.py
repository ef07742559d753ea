"""The model the staged pipeline attributes, and its per-layer compressors (same seeds as pipeline=lds)."""

import torch
from torch import nn

from grass.compress.factorized import FactorizedCompressor
from grass.errors import GrassError
from grass.model_files import checkpoint_path
from grass.run_compressors import build_layer_compressors
from grass.run_context import RunContext
from grass.seeding import derive_seed
from grass.validate import STORE_MODELS


def attribution_model(ctx: RunContext, checkpoint: int = 0) -> nn.Module:
    """store.model=checkpoint: full-data fine-tuned model number `checkpoint` (stage=finetune of pipeline=lds makes
    them); store.model=base: the base the fine-tuning starts from (a pretrained model as it is, e.g. SmolLM2), one
    model only (grass.validate refuses tda.num_checkpoints > 1 with it)."""
    source = ctx.cfg.store.model
    if source not in STORE_MODELS:
        raise GrassError(f"store.model={source!r}; choose one of {list(STORE_MODELS)}")
    if source == "checkpoint":
        path = checkpoint_path(ctx.models_dir(), checkpoint)
        if not path.exists():
            raise GrassError(f"store.model=checkpoint attributes the fine-tuned full-data model {path}, which does not "
                             f"exist: make it with the same overrides and pipeline=lds stage=finetune, or attribute "
                             f"the base model as it is with store.model=base")
        model = ctx.task.load(ctx, path)
    else:
        base = getattr(ctx.task, "base_model", None)
        if base is None:
            raise GrassError(f"store.model=base needs a task with a base model (language models); dataset "
                             f"{ctx.cfg.dataset.name} trains from scratch: use store.model=checkpoint")
        model = base(ctx)
    return model.to(ctx.device).eval()


def layer_compressors(ctx: RunContext, model: nn.Module, checkpoint: int = 0) -> dict[str, FactorizedCompressor]:
    """Checkpoint `checkpoint`'s per-layer compressors, exactly as pipeline=lds builds them (so features agree).

    A flat compressor fails in build_factorized (grass.store_stages.featurizer picks the flat path for those)."""
    with torch.no_grad():
        return build_layer_compressors(ctx, model, derive_seed(ctx.cfg.seed, "linear", "checkpoint", checkpoint))
