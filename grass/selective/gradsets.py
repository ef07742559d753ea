"""Rows of per-example gradients whose inner products a selective mask must preserve (SPEC 4).

Three shapes of input, one interface (`widths`, `n`, `take`, `gram`, `select`, `energy`):
- flat gradients g [N, d]: one side;
- paired factors of a one-token linear layer, (a [N, I'], delta [N, O]): G = delta a^T, so
  <G_t, G_i> = <a_t, a_i> * <delta_t, delta_i> and the Gram matrix is the product of the sides' Grams;
- a linear layer's materialized gradients over many tokens, G [N, O, I'] (`LayerGrads`): the sides are
  its input axis I' and its output axis O, and a mask keeps the rows O_idx and columns I_idx of every G.
Sides are ordered as grass.selective.artifact.SIDES: (input, output gradient). Weights w_s [width_s]
scale coordinate j of side s by w_s[j] in one of the two rows of each inner product (a soft mask m gives
w = m^2, since both rows are masked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from grass.errors import GrassError


@dataclass(frozen=True)
class LayerGrads:
    """Per-example gradients of one linear layer, g [N, O, I'] (output-major, I' incl. the bias column)."""

    g: Tensor


Grads = Union[Tensor, Sequence[Tensor], LayerGrads]
Weights = Optional[Sequence[Tensor]]


class ProductSides:
    """Flat g [N, d] (one side) or one-token paired factors (a [N, I'], delta [N, O])."""

    def __init__(self, sides: Sequence[Tensor]) -> None:
        self.sides = list(sides)

    @property
    def widths(self) -> list[int]:
        return [x.shape[1] for x in self.sides]

    @property
    def n(self) -> int:
        return self.sides[0].shape[0]

    def take(self, rows: Tensor) -> "ProductSides":
        return ProductSides([x[rows.to(x.device)] for x in self.sides])

    def gram(self, other: "ProductSides", weights: Weights = None) -> Tensor:
        """prod_s (self_s * w_s) @ other_s^T -> [n_self, n_other]."""
        out = None
        for s, (q, t) in enumerate(zip(self.sides, other.sides)):
            g = (q if weights is None else q * weights[s]) @ t.T
            out = g if out is None else out * g
        return out

    def select(self, indices: Sequence[Tensor]) -> "ProductSides":
        return ProductSides([x[:, i.to(x.device)] for x, i in zip(self.sides, indices)])

    def energy(self) -> list[Tensor]:
        """Per side, [width_s]: sum over rows of x_s[n, j]^2 times the other sides' squared row norms."""
        sq = [x.square() for x in self.sides]
        norms = [x.sum(dim=1) for x in sq]
        out = []
        for s, x in enumerate(sq):
            scale = torch.ones_like(norms[s])
            for r, nr in enumerate(norms):
                if r != s:
                    scale = scale * nr
            out.append(scale @ x)
        return out


class MatrixRows:
    """A linear layer's gradients G [N, O, I']; sides (input I', output O)."""

    def __init__(self, g: Tensor) -> None:
        self.g = g

    @property
    def widths(self) -> list[int]:
        return [self.g.shape[2], self.g.shape[1]]

    @property
    def n(self) -> int:
        return self.g.shape[0]

    def take(self, rows: Tensor) -> "MatrixRows":
        return MatrixRows(self.g[rows.to(self.g.device)])

    def gram(self, other: "MatrixRows", weights: Weights = None) -> Tensor:
        """sum_{o,j} w_out[o] w_in[j] G_t[o, j] G_i[o, j] -> [n_self, n_other]."""
        q = self.g if weights is None else self.g * weights[1][:, None] * weights[0][None, :]
        return q.flatten(1) @ other.g.flatten(1).T

    def select(self, indices: Sequence[Tensor]) -> "MatrixRows":
        idx_in, idx_out = (i.to(self.g.device) for i in indices)
        return MatrixRows(self.g[:, idx_out][:, :, idx_in])

    def energy(self) -> list[Tensor]:
        """Squared gradient mass per coordinate: [(sum over n, o of G^2) [I'], (sum over n, j of G^2) [O]]."""
        sq = self.g.square()
        return [sq.sum(dim=(0, 1)), sq.sum(dim=(0, 2))]


RowSet = Union[ProductSides, MatrixRows]


def as_rowset(grads: Grads) -> RowSet:
    """Validate g [N, d], paired ([N, I'], [N, O]) or LayerGrads([N, O, I']); float32 rows."""
    if isinstance(grads, LayerGrads):
        g = grads.g
        if not isinstance(g, Tensor) or g.ndim != 3:
            raise GrassError(f"selective mask: LayerGrads must hold [N, O, I'], got {getattr(g, 'shape', type(g))}")
        _check_finite(g, "the layer gradients")
        return MatrixRows(g.float())
    sides = [grads] if isinstance(grads, Tensor) else list(grads)
    if not sides or not all(isinstance(x, Tensor) for x in sides):
        raise GrassError("selective mask: grads must be a tensor [N, d], a pair of tensors ([N, d_in], [N, d_out]) "
                         "or LayerGrads([N, O, I'])")
    for s, x in enumerate(sides):
        if x.ndim != 2:
            raise GrassError(f"selective mask: side {s} must be [N, d] (one token per example), got {list(x.shape)}")
        _check_finite(x, f"side {s}")
    if len({x.shape[0] for x in sides}) != 1:
        raise GrassError(f"selective mask: paired sides must have the same rows, got {[list(x.shape) for x in sides]}")
    return ProductSides([x.float() for x in sides])


def _check_finite(x: Tensor, what: str) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(dim=1).nonzero()[0, 0])
        raise GrassError(f"selective mask: {what} hold non-finite values (first at row {bad})")
