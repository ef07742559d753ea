"""Is a learned mask better than a random one? Inner-product fidelity on held-out gradient rows (SPEC 4).

Held-out rows are split (seeded, 80/20) into train and query rows; for each query row, the Spearman
correlation between its exact inner products with the train rows and the masked ones is averaged. The
learned mask is compared with `draws` seeded random masks of the same size on every side. Gram matrices
of several layers add up (`add`), which is what block-diagonal attribution sees: the whole model's
inner product is the sum of its layers'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from grass.errors import GrassError
from grass.seeding import generator
from grass.selective.gradsets import Grads, as_rowset
from grass.selective.learn import row_spearman, split_rows


@dataclass
class HeldoutGrams:
    """[Nq, Nt] inner products of held-out query rows with held-out train rows: exact, learned mask, random masks."""

    exact: Tensor
    learned: Tensor
    random: list[Tensor] = field(default_factory=list)

    def add(self, other: "HeldoutGrams") -> "HeldoutGrams":
        if len(self.random) != len(other.random):
            raise GrassError("held-out grams with different numbers of random draws cannot be added")
        return HeldoutGrams(self.exact + other.exact, self.learned + other.learned,
                            [a + b for a, b in zip(self.random, other.random)])

    def fidelity(self) -> dict:
        """{"learned": mean Spearman, "random": [one per draw], "random_mean": ...} over non-constant rows."""
        keep = (self.exact.std(dim=1) > 0).nonzero().flatten()
        if not keep.numel():
            raise GrassError("held-out fidelity: every query row has constant inner products")
        exact = self.exact[keep]
        rand = [row_spearman(exact, r[keep]) for r in self.random]
        return {"learned": row_spearman(exact, self.learned[keep]), "random": rand,
                "random_mean": sum(rand) / len(rand) if rand else float("nan")}


def random_indices(width: int, k: int, seed: int, tag: str, side: int, draw: int) -> Tensor:
    """k sorted distinct coordinates of [0, width), seeded by (seed, tag, side, draw)."""
    gen = generator(seed, "selective_mask", "random", tag, side, draw)
    return torch.randperm(width, generator=gen)[:k].sort().values


def heldout_grams(grads: Grads, learned: Sequence[Tensor] | Tensor, seed: int, tag: str = "flat",
                  draws: int = 3, query_fraction: float = 0.2) -> HeldoutGrams:
    """Gram matrices of held-out rows (g [N, d], paired sides, or LayerGrads) exact / learned / random masks."""
    rows = as_rowset(grads)
    learned = [learned] if isinstance(learned, Tensor) else list(learned)
    if len(learned) != len(rows.widths):
        raise GrassError(f"held-out fidelity: {len(rows.widths)} sides but {len(learned)} learned index sets")
    train_rows, query_rows = split_rows(rows.n, seed, query_fraction)
    train, query = rows.take(train_rows), rows.take(query_rows)
    with torch.no_grad():
        exact = query.gram(train)
        picked = query.select(learned).gram(train.select(learned))
        rand = []
        for draw in range(draws):
            idx = [
                random_indices(w, i.numel(), seed, tag, s, draw) for s, (w, i) in enumerate(zip(rows.widths, learned))
            ]
            rand.append(query.select(idx).gram(train.select(idx)))
    return HeldoutGrams(exact, picked, rand)
