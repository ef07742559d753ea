"""The stages of pipeline=store, in order; stage=all chains them in one process."""

from grass.errors import GrassError
from grass.staged.attribute import run_attribute_store
from grass.staged.cache import run_cache
from grass.staged.ifvp import run_ifvp
from grass.staged.precondition import run_precondition
from grass.staged.self_influence import run_self_influence
from grass.stages.context import RunContext
from grass.stages.run import LDS_STAGES

STORE_STAGES = {"cache": run_cache, "precondition": run_precondition, "ifvp": run_ifvp,
                "attribute": run_attribute_store, "self_influence": run_self_influence}


def store_stages(stage: str) -> list[str]:
    if stage == "all":
        return list(STORE_STAGES)
    if stage in set(LDS_STAGES) - set(STORE_STAGES):  # pipeline=lds stages whose artifacts the store reads
        raise GrassError(f"stage={stage!r} is not a stage of pipeline=store: run it with pipeline=lds and the same "
                         f"other overrides (the store stages then read what it made), or choose all or one of "
                         f"{list(STORE_STAGES)}")
    if stage not in STORE_STAGES:
        raise GrassError(f"stage={stage!r} is not a stage of pipeline=store; choose all or one of "
                         f"{list(STORE_STAGES)}")
    return [stage]


def run_store_stages(ctx: RunContext) -> None:
    for name in store_stages(ctx.cfg.stage):
        STORE_STAGES[name](ctx)
