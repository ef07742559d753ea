"""pipeline=store: the staged, sharded pipeline for attribution at scale (REFERENCE "Billion scale").

cache (worker i/N) -> precondition -> ifvp (worker i/N) -> attribute (+ self_influence), each its own run
over one store folder (grass.staged.layout), or chained by stage=all. Features live in grass.store shards.
"""

from grass.staged.run import STORE_STAGES, run_store_stages

__all__ = ["STORE_STAGES", "run_store_stages"]
