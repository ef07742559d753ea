"""Block-diagonal preconditioned attribution (SPEC 1.1, 1.2) over a FeatureSource whose train features are read
chunk by chunk.

fit: one pass over the train chunks accumulates each block's float64 Gram and eigendecomposes it once
(grass.attribute.gram, the code grass.attribute.solver.DampedSolver fits with). Any damping afterwards:

    P_b(lambda)   if_efim: (F_b + lambda trace(F_b) / K_b I)^{-1}    trak: s^2 (s^2 G_b + lambda I)^{-1}, s^2 = 1/p
    psi_b = w_i phi_b P_b                                                                     [rows, K_b]
    scores(i, z) = sum_b <psi_{i,b}, q_{z,b}>                                                 [n, m]

A block is one layer (or the flat block) of one checkpoint; w [n] is the row weight: 1 / C over C checkpoints,
times TRAK's mean Q weight. This is DampedSolver's feature side (exact for any n; DampedSolver switches to the
example side when K > n only to save work, which a streamed source cannot do without holding every row):
pipeline=store's precondition / ifvp / attribute stages are this computation split over processes and shards.
scores(lambda) streams one pass over the train chunks; scores_grid(lambdas) scores a whole damping grid in that
one pass too (each chunk read once, G inverses applied to it), holding G score arrays [n, m'] (no [n, D] array is
ever held).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from grass.attribute.gram import FeatureEigen, check_features, fit_block_eigens
from grass.attribute.sources import FeatureSource
from grass.errors import GrassError

DAMPING_KINDS = ("relative", "absolute")


def apply_inverses(features: Mapping[str, Tensor], inverses: Mapping[str, Tensor],
                   row_weight: Tensor | None = None) -> dict[str, Tensor]:
    """{block: w * phi_b P_b [rows, K_b] float32} for chunk features {block: [rows, K_b]}, P_b [K_b, K_b] float64
    and row_weight w [rows] (None: 1)."""
    out = {}
    for name, inverse in inverses.items():
        psi = features[name].double() @ inverse
        out[name] = (psi if row_weight is None else psi * row_weight.double()[:, None]).float()
    return out


class StreamedAttributor:
    """Block-diagonal preconditioned scores from a FeatureSource; same scores() contract as Attributor.

    damping_kind: "relative" (if_efim) or "absolute" (trak, which needs num_params); row_weight: w [n] or None.
    """

    def __init__(self, source: FeatureSource, damping_kind: str = "relative", num_params: int | None = None,
                 row_weight: Tensor | None = None, eigens: Mapping[str, FeatureEigen] | None = None) -> None:
        """Fits every block's eigendecomposition from the source (one pass), unless `eigens` are given."""
        if damping_kind not in DAMPING_KINDS:
            raise GrassError(f"damping_kind={damping_kind!r}; a preconditioned method has one of {DAMPING_KINDS}")
        if damping_kind == "absolute" and not (num_params and num_params > 0):
            raise GrassError(f"absolute (TRAK) damping needs num_params > 0, got {num_params}")
        if row_weight is not None and tuple(row_weight.shape) != (source.n_train,):
            raise GrassError(f"row_weight must be [{source.n_train}], got {tuple(row_weight.shape)}")
        self.source, self.damping_kind, self.num_params = source, damping_kind, num_params
        self.row_weight = row_weight
        self.eigens = dict(eigens) if eigens is not None else fit_block_eigens(source.train_blocks(), source.blocks)

    def inverses(self, damping: float) -> dict[str, Tensor]:
        """{block: P_b(damping) [K_b, K_b] float64}; GrassError naming a block whose features are all zero."""
        out = {}
        for name, eigen in self.eigens.items():
            try:
                out[name] = (eigen.relative_inverse(damping) if self.damping_kind == "relative"
                             else eigen.absolute_inverse(self.num_params, damping))
            except GrassError as e:
                raise GrassError(f"layer '{name}': {e}") from None
        return out

    def scores(self, damping: float, query_idx: Tensor | None = None) -> Tensor:
        """[n, m'] float32 scores of the selected queries (all when query_idx is None), one pass over the train."""
        return self.scores_grid([damping], query_idx)[float(damping)]

    def scores_grid(self, dampings, query_idx: Tensor | None = None) -> dict[float, Tensor]:
        """{lambda: [n, m'] float32 scores} for every damping, all from ONE pass over the train chunks (a store's
        shards are read once for the whole grid). Memory: len(dampings) arrays [n, m'] (m' = selected queries)."""
        queries = self.source.queries()
        idx = None if query_idx is None else torch.as_tensor(query_idx, dtype=torch.long)
        q = {name: (x if idx is None else x[idx]) for name, x in queries.items()}
        for name, x in q.items():
            check_features(x, f"query features of block '{name}'")
        values = [float(lam) for lam in dampings]
        inverses = {lam: self.inverses(lam) for lam in values}
        m = next(iter(q.values())).shape[0]
        out = {lam: torch.zeros(self.source.n_train, m) for lam in values}
        for chunk in self.source.train_chunks():
            weight = None if self.row_weight is None else self.row_weight[chunk.start:chunk.stop]
            for lam in values:
                for name, rows in apply_inverses(chunk.features, inverses[lam], weight).items():
                    out[lam][chunk.start:chunk.stop] += rows @ q[name].float().T
        return out
