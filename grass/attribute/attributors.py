"""Attributors: compressed train/query features of each checkpoint -> scores [n_train, n_query].

Positive score = the train example helps the query (lowers its loss). Everything that does not depend on
the damping (the eigendecomposition and the projected queries) is computed once in `add_checkpoint`, so
a damping grid costs one diagonal rescale and one matmul per value and checkpoint.
"""

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from grass.attribute.gram import absolute_terms, relative_terms
from grass.attribute.solver import DampedSolver
from grass.attribute.sources import FLAT_BLOCK, FeatureSource
from grass.errors import GrassError


class Attributor(ABC):
    """Accumulates checkpoints, then answers scores for any damping and any subset of the queries."""

    damping_kind: str = "none"  # "absolute" | "relative" | "none"

    def __init__(self):
        self._n: int | None = None
        self._m: int | None = None
        self._count = 0

    @property
    def checkpoints(self) -> int:
        """How many checkpoints have been added."""
        return self._count

    def add_checkpoint(self, train: Tensor, query: Tensor, train_weight: Tensor | None = None,
                       num_params: int | None = None) -> None:
        """Add one checkpoint: train [n, k] and query [m, k] compressed features, train_weight [n]."""
        for what, x in (("train", train), ("query", query)):
            if x.ndim != 2:
                raise GrassError(f"{what} features must be [examples, k], got shape {tuple(x.shape)}")
        if train.shape[1] != query.shape[1]:
            raise GrassError(f"train features {tuple(train.shape)} and query features {tuple(query.shape)} "
                             "must share the compressed dimension k")
        if self._n is not None and (train.shape[0], query.shape[0]) != (self._n, self._m):
            raise GrassError(f"checkpoint {self._count} has {train.shape[0]} train / {query.shape[0]} query "
                             f"examples, earlier checkpoints had {self._n} / {self._m}")
        if train_weight is not None and tuple(train_weight.shape) != (train.shape[0],):
            raise GrassError(f"train_weight must be [{train.shape[0]}], got {tuple(train_weight.shape)}")
        self._add(train, query, train_weight, num_params)
        self._n, self._m = int(train.shape[0]), int(query.shape[0])
        self._count += 1

    def add_source(self, source: FeatureSource, train_weight: Tensor | None = None,
                   num_params: int | None = None) -> None:
        """add_checkpoint with the one block of a flat feature source (in memory: no copy)."""
        if list(source.blocks) != [FLAT_BLOCK]:
            raise GrassError(f"{type(self).__name__} scores one flat block; the source has blocks "
                             f"{sorted(source.blocks)} (per-layer blocks go to grass.attribute.blockwise)")
        self.add_checkpoint(source.train(FLAT_BLOCK), source.queries()[FLAT_BLOCK], train_weight, num_params)

    def scores(self, damping: float | None, query_idx: Tensor | None = None) -> Tensor:
        """[n, m'] float32 scores for the selected queries (all m when query_idx is None)."""
        if self._count == 0:
            raise GrassError("no checkpoint was added to the attributor")
        if self.damping_kind != "none" and (damping is None or not damping > 0):
            raise GrassError(f"{type(self).__name__} needs a damping > 0, got {damping}")
        idx = self._check_idx(query_idx)
        return self._scores(damping, idx)

    def scores_grid(self, dampings, query_idx: Tensor | None = None) -> dict[float, Tensor]:
        """{lambda: scores(lambda, query_idx)} over a damping grid (in memory each value is one rescale)."""
        return {float(lam): self.scores(lam, query_idx) for lam in dampings}

    def _check_idx(self, query_idx) -> Tensor | None:
        if query_idx is None:
            return None
        idx = torch.as_tensor(query_idx, dtype=torch.long).flatten()
        if idx.numel() and (idx.min() < 0 or idx.max() >= self._m):
            raise GrassError(f"query_idx must lie in [0, {self._m}), got range [{int(idx.min())}, {int(idx.max())}]")
        return idx

    @abstractmethod
    def _add(self, train: Tensor, query: Tensor, train_weight: Tensor | None, num_params: int | None) -> None:
        """Precompute what one checkpoint contributes (shapes already checked)."""

    @abstractmethod
    def _scores(self, damping: float | None, idx: Tensor | None) -> Tensor:
        """[n, m'] float32 scores over the selected queries (idx None = all)."""


def _select(x: Tensor, idx: Tensor | None) -> Tensor:
    """Rows idx of x (all rows when idx is None)."""
    return x if idx is None else x[idx.to(x.device)]


class _SolverAttributor(Attributor):
    """Shared storage for the preconditioned methods: one solver and its projected queries per checkpoint."""

    def __init__(self):
        super().__init__()
        self._solvers: list[DampedSolver] = []
        self._projected: list[Tensor] = []  # R_c [m, r_c] float32

    def _store(self, train: Tensor, query: Tensor) -> None:
        solver = DampedSolver(train)
        self._projected.append(solver.project_queries(query))
        solver.release_features()  # queries are projected; do not keep a reference to Phi [n, k] alive
        self._solvers.append(solver)

    def _mean_solve(self, terms: list[tuple[float, float, float]], idx: Tensor | None) -> Tensor:
        """mean_c f_c * Phi_c (a_c Phi_c^T Phi_c + b_c I)^{-1} phi_{z,c} [n, m'], terms[c] = (a_c, b_c, f_c)."""
        total = None
        for solver, projected, (a, b, factor) in zip(self._solvers, self._projected, terms):
            part = solver.scores(_select(projected, idx), a, b)
            if factor != 1.0:
                part.mul_(factor)
            total = part if total is None else total.add_(part)
        return total / len(self._solvers)


class TRAKAttributor(_SolverAttributor):
    """TRAK (SPEC 1.2): (mean_c Phi_c K_c^{-1} phi_{z,c}) * mean_c Q_c, K_c = Phi_c^T Phi_c + lambda I.

    Features are divided by sqrt(num_params) here (folded into the solve), so num_params is required;
    train_weight is Q_c = 1 - p_c(y_i | x_i) [n], averaged over checkpoints.
    """

    damping_kind = "absolute"

    def __init__(self):
        super().__init__()
        self._num_params: list[int] = []  # p_c; s_c^2 = 1 / p_c
        self._weight_sum: Tensor | None = None  # sum_c Q_c [n] float64

    def _add(self, train, query, train_weight, num_params):
        if num_params is None or num_params <= 0:
            raise GrassError(f"TRAK needs num_params > 0 to scale gradients by 1/sqrt(p), got {num_params}")
        if train_weight is None:
            raise GrassError("TRAK needs train_weight (Q = 1 - p_y per train example)")
        if not torch.isfinite(train_weight).all():
            raise GrassError("TRAK train_weight holds non-finite values")
        self._store(train, query)
        self._num_params.append(int(num_params))
        weight = train_weight.detach().double().cpu()
        self._weight_sum = weight if self._weight_sum is None else self._weight_sum + weight

    def _scores(self, damping, idx):
        # The 1/sqrt(p) feature scale s is folded into the solve instead of copying the features:
        # (s Phi) ((s Phi)^T (s Phi) + lambda I)^{-1} (s Q)^T = s^2 * Phi (s^2 Phi^T Phi + lambda I)^{-1} Q^T.
        terms = [(*absolute_terms(p, damping), 1.0 / p) for p in self._num_params]
        kernel = self._mean_solve(terms, idx)
        weight = (self._weight_sum / self._count).float().to(kernel.device)
        return kernel * weight[:, None]


class InfluenceAttributor(_SolverAttributor):
    """eFIM influence on one block (SPEC 1.1): Phi (F + lambda_eff I)^{-1} phi_z, averaged over checkpoints.

    F = Phi^T Phi / n and relative damping lambda_eff = lambda * trace(F) / k; in solver terms
    a = 1 / n and b = lambda * trace(Phi^T Phi) / (n k).
    """

    damping_kind = "relative"

    def _add(self, train, query, train_weight, num_params):
        if not train.any():  # checked before storing, so a rejected checkpoint leaves no partial state
            raise GrassError(f"checkpoint {self._count}: train features are all zero, relative damping is undefined")
        self._store(train, query)

    def _scores(self, damping, idx):
        terms = [(*relative_terms(s.n, s.dim, s.trace, damping), 1.0) for s in self._solvers]
        return self._mean_solve(terms, idx)


class GradDotAttributor(Attributor):
    """Plain inner products (Hessian = identity): mean_c Phi_c phi_{z,c}; damping is ignored."""

    damping_kind = "none"

    def __init__(self):
        super().__init__()
        self._features: list[tuple[Tensor, Tensor]] = []  # (train [n, k], query [m, k]) float32

    def _add(self, train, query, train_weight, num_params):
        for what, x in (("train", train), ("query", query)):
            if not torch.isfinite(x).all():
                raise GrassError(f"{what} features hold non-finite values")
        self._features.append((train.float(), query.float()))

    def _scores(self, damping, idx):
        total = None
        for train, query in self._features:
            part = train @ _select(query, idx).to(train.device).T
            total = part if total is None else total.add_(part)
        return total / len(self._features)
