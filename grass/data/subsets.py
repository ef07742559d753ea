"""Seeded subsets of the train set (LDS) and the damping-validation split of the queries.

The subsets are written to disk the first time (with a checksum, grass.artifacts) and read back afterwards,
never re-drawn (SPEC 6); the validation split is a pure function of (n_query, fraction, seed), drawn anew each
time from its own seeded generator.
"""

from pathlib import Path

import torch

from grass.artifacts import artifact_lock, artifact_ready, load_artifact, save_artifact
from grass.errors import GrassError
from grass.seeding import generator


def subset_mask(n_train: int, fraction: float, seed: int, index: int) -> torch.Tensor:
    """Bool [n_train]: a seeded draw of round(fraction * n_train) examples for subset `index`."""
    if not 0.0 < fraction < 1.0:
        raise GrassError(f"lds.subset_fraction must lie in (0, 1), got {fraction}")
    size = max(1, round(fraction * n_train))
    chosen = torch.randperm(n_train, generator=generator(seed, "subset", index))[:size]
    mask = torch.zeros(n_train, dtype=torch.bool)
    mask[chosen] = True
    return mask


def load_or_draw_subsets(path: Path, n_train: int, fraction: float, seed: int, count: int) -> torch.Tensor:
    """Bool [count, n_train]; rows already on disk are read back (checksum and settings checked), missing
    rows drawn and saved. Raises GrassError for a corrupt file or one drawn with other settings."""
    settings = {"n_train": int(n_train), "subset_fraction": float(fraction), "seed": int(seed)}
    with artifact_lock(path):
        if artifact_ready(path):
            stored = load_artifact(path, settings, hint="rerun: the subsets are drawn again from the seed")["masks"]
        else:
            stored = torch.zeros(0, n_train, dtype=torch.bool)
        if len(stored) < count:
            extra = [subset_mask(n_train, fraction, seed, s) for s in range(len(stored), count)]
            stored = torch.cat([stored, torch.stack(extra)])
            save_artifact({"masks": stored}, path, settings, kind="LDS subsets")
    return stored[:count]


def validation_size(n_query: int, fraction: float) -> int:
    """How many of n_query queries the validation split holds out to choose the damping: max(2, round(f * n))."""
    if not 0.0 < fraction < 1.0:
        raise GrassError(f"lds.val_fraction must lie in (0, 1), got {fraction}")
    return max(2, round(fraction * n_query))


def validation_split(n_query: int, fraction: float, seed: int):
    """(val_idx, eval_idx) LongTensors: a seeded fraction of queries chooses the damping, the rest is reported."""
    n_val = validation_size(n_query, fraction)
    order = torch.randperm(n_query, generator=generator(seed, "query_validation_split"))
    return order[:n_val].sort().values, order[n_val:].sort().values
