"""pipeline=store: the staged, sharded pipeline for attribution at scale (REFERENCE "Billion scale").

cache (worker i/N) -> precondition -> ifvp (worker i/N) -> attribute (+ self_influence), each its own run
over one store folder (grass.store_stages.layout), or chained by stage=all (grass.store_stages.run). Features live in
grass.store shards. The package imports nothing itself, so grass.validate can read grass.store_stages.damping.
"""
