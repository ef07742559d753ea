"""The stages of pipeline=store, in order; stage=all chains them in one process."""

from grass.errors import GrassError
from grass.lds_stages.run import LDS_STAGES
from grass.run_context import RunContext
from grass.store_stages.attribute import run_attribute_store
from grass.store_stages.cache import run_cache
from grass.store_stages.ifvp import run_ifvp
from grass.store_stages.precondition import run_precondition
from grass.store_stages.self_influence import run_self_influence

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
