"""Block-diagonal eFIM influence (SPEC 1.1) over a FeatureSource whose train features are read chunk by chunk.

fit: one pass over the train chunks accumulates each block's float64 Gram and eigendecomposes it once
(grass.attribute.gram, the code grass.attribute.solver.DampedSolver fits with). Any damping afterwards:

    P_b(lambda) = (F_b + lambda trace(F_b) / K_b I)^{-1}        psi_b = phi_b P_b        [rows, K_b]
    scores(i, z) = sum_b <psi_{i,b}, q_{z,b}>                                           [n, m]

This is DampedSolver's feature side (exact for any n; DampedSolver switches to the example side when K > n only
to save work, which a streamed source cannot do without holding every row): pipeline=store's precondition / ifvp / attribute stages
are this computation split over processes and shards. scores(lambda) streams one pass over the train chunks
per damping value, so a damping grid of G values costs G passes (no [n, D] array is ever held).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from grass.attribute.gram import FeatureEigen, check_features, fit_block_eigens
from grass.attribute.sources import FeatureSource
from grass.errors import GrassError


def apply_inverses(features: Mapping[str, Tensor], inverses: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """{block: phi_b P_b [rows, K_b] float32} for chunk features {block: [rows, K_b]} and P_b [K_b, K_b] float64."""
    return {name: (features[name].double() @ inverse).float() for name, inverse in inverses.items()}


class StreamedInfluence:
    """Relative-damping block-diagonal influence from a FeatureSource; same scores() contract as Attributor."""

    damping_kind = "relative"

    def __init__(self, source: FeatureSource, eigens: Mapping[str, FeatureEigen] | None = None) -> None:
        """Fits every block's eigendecomposition from the source (one pass), unless `eigens` are given."""
        self.source = source
        self.eigens = dict(eigens) if eigens is not None else fit_block_eigens(source.train_blocks(), source.blocks)

    def inverses(self, damping: float) -> dict[str, Tensor]:
        """{block: P_b(damping) [K_b, K_b] float64}; GrassError naming a block whose features are all zero."""
        out = {}
        for name, eigen in self.eigens.items():
            try:
                out[name] = eigen.relative_inverse(damping)
            except GrassError as e:
                raise GrassError(f"layer '{name}': {e}") from None
        return out

    def scores(self, damping: float, query_idx: Tensor | None = None) -> Tensor:
        """[n, m'] float32 scores of the selected queries (all when query_idx is None), one pass over the train."""
        queries = self.source.queries()
        idx = None if query_idx is None else torch.as_tensor(query_idx, dtype=torch.long)
        q = {name: (x if idx is None else x[idx]) for name, x in queries.items()}
        for name, x in q.items():
            check_features(x, f"query features of block '{name}'")
        inverses = self.inverses(damping)
        m = next(iter(q.values())).shape[0]
        out = torch.zeros(self.source.n_train, m)
        for chunk in self.source.train_chunks():
            psi = apply_inverses(chunk.features, inverses)
            for name, rows in psi.items():
                out[chunk.start:chunk.stop] += rows @ q[name].float().T
        return out
