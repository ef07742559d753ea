"""Attributors: compressed train/query features of each checkpoint -> scores [n_train, n_query].

Positive score = the train example helps the query (lowers its loss). `add_checkpoint` keeps the features; the
preconditioned methods solve when scores are asked, each request (`scores` at one damping, `scores_grid` over a
grid, on all or some queries) by the solver grass.attribute.cost predicts cheaper: one eigendecomposition per
checkpoint, kept (then any damping is a rescale), or one Cholesky factorization per damping (SPEC 1.1, 1.2).
"""

import logging
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from grass.attribute.cholesky import (
    REFINE_TOL,
    SolveReport,
    damped_solve,
    feature_side,
    right_hand_side,
    slab_bytes,
    solve_working_bytes,
    system_matrix,
    to_scores,
)
from grass.attribute.cost import Request, check_solver, cholesky_precision, choose_solver
from grass.attribute.gram import absolute_terms, check_features, relative_terms
from grass.attribute.memory import MemoryMeter, storage_bytes
from grass.attribute.solver import DampedSolver
from grass.attribute.sources import FLAT_BLOCK, FeatureSource
from grass.errors import GrassError

log = logging.getLogger(__name__)


class Attributor(ABC):
    """Accumulates checkpoints, then answers scores for any damping and any subset of the queries."""

    damping_kind: str = "none"  # "absolute" | "relative" | "none"

    def __init__(self):
        self._n: int | None = None
        self._m: int | None = None
        self._count = 0
        self.meter = MemoryMeter()  # held / peak bytes (grass.attribute.memory)
        self.checkpoint_peaks: list[int] = []  # bytes: held + the largest working set while solving checkpoint c

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
        """{lambda: scores(lambda, query_idx)} over a damping grid."""
        return {float(lam): self.scores(lam, query_idx) for lam in dampings}

    @property
    def peak_bytes(self) -> int:
        """The most bytes this attributor has held plus worked in so far (grass.attribute.memory)."""
        return self.meter.peak

    last_solver: str | None = None  # the solver(s) of the last request ("eigh", "cholesky"; None: no solve)

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
    """The preconditioned methods: mean_c f_c * Phi_c (a_c Phi_c^T Phi_c + b_c I)^{-1} Q_c^T over checkpoints c.

    add_checkpoint keeps references to the features (no work, no copy). Each request (scores, or scores_grid over
    D dampings on m' queries) picks its solver per checkpoint with grass.attribute.cost: one eigendecomposition
    (grass.attribute.solver: fitted once and kept as L = Phi V, R = Q V, V dropped, the features released), or one
    Cholesky factorization per damping (grass.attribute.cholesky, float32 + refinement for few queries, nothing
    kept). `solver` forces one ("eigh" is the float64 reference). The choice, the solve reports and the memory
    (grass.attribute.memory) are recorded: `last_solver`, `solve_reports`, `meter`, `checkpoint_peaks`.
    """

    def __init__(self, solver: str = "auto"):
        super().__init__()
        self.solver = check_solver(solver)
        self._k: int | None = None
        self._features: list[tuple[Tensor, Tensor] | None] = []  # (Phi [n, k], Q [m, k]) until an eigh fit
        self._fits: list[tuple[DampedSolver, Tensor] | None] = []  # (solver, R [m, r] float32) once fitted
        self.solve_reports: list[SolveReport] = []

    def _store(self, train: Tensor, query: Tensor) -> None:
        check_features(train, "train features")
        check_features(query, "query features")
        if train.shape[0] == 0 or train.shape[1] == 0:
            raise GrassError(f"train features must be non-empty, got shape {tuple(train.shape)}")
        self._features.append((train, query))
        self._fits.append(None)
        self._k = int(train.shape[1])
        self.checkpoint_peaks.append(self.meter.set_held(self._held()))

    def _held(self) -> list[Tensor]:
        out = []
        for features, fit in zip(self._features, self._fits):
            out += list(features) if features is not None else fit[0].held() + [fit[1]]
        return out + self._extra_held()

    def _extra_held(self) -> list[Tensor]:
        return []

    def _terms(self, c: int, damping: float) -> tuple[float, float, float]:
        """(a_c, b_c, f_c) of checkpoint c at this damping."""
        raise NotImplementedError

    def _finish(self, kernel: Tensor) -> Tensor:
        """The mean over checkpoints [n, m'] -> the method's scores."""
        return kernel

    def _scores(self, damping, idx):
        return self._grid([float(damping)], idx)[float(damping)]

    def scores_grid(self, dampings, query_idx: Tensor | None = None) -> dict[float, Tensor]:
        """{lambda: scores(lambda, query_idx)}: each checkpoint's work done once for the whole grid."""
        values = [float(lam) for lam in dampings]
        if self._count == 0:
            raise GrassError("no checkpoint was added to the attributor")
        bad = [lam for lam in values if not lam > 0]
        if bad:
            raise GrassError(f"{type(self).__name__} needs dampings > 0, got {bad}")
        return self._grid(values, self._check_idx(query_idx)) if values else {}

    def scores_parts(self, dampings, query_idx: Tensor | None, checkpoints) -> dict[float, Tensor]:
        """{lambda: the sum over `checkpoints` (indices) of their parts [n, m'] float32}, not yet averaged or finished:
        for a damping search that visits checkpoints apart (grass.attribute.damping). finish_parts(sum over all
        checkpoints) = scores_grid's value. GrassError for a damping <= 0 or a checkpoint not added."""
        values = [float(lam) for lam in dampings]
        chosen = [int(c) for c in checkpoints]
        if not chosen or any(not 0 <= c < self._count for c in chosen):
            raise GrassError(f"checkpoints {chosen}: choose among the {self._count} added (0 to {self._count - 1})")
        bad = [lam for lam in values if not lam > 0]
        if bad:
            raise GrassError(f"{type(self).__name__} needs dampings > 0, got {bad}")
        return self._parts(values, self._check_idx(query_idx), chosen)

    def finish_parts(self, total: Tensor, count: int | None = None) -> Tensor:
        """Scores [n, m'] from a sum of checkpoint parts: averaged over `count` checkpoints (default: all added) and
        finished by the method (TRAK's mean Q weights)."""
        return self._finish(total / (count or self._count))

    def _grid(self, dampings: list[float], idx: Tensor | None) -> dict[float, Tensor]:
        totals = self._parts(dampings, idx, range(self._count))
        return {lam: self.finish_parts(total) for lam, total in totals.items()}

    def _parts(self, dampings: list[float], idx: Tensor | None, checkpoints) -> dict[float, Tensor]:
        scored = self._m if idx is None else int(idx.numel())
        request = Request(self._n, self._k, self._m, len(dampings), scored)
        totals: dict[float, Tensor | None] = {lam: None for lam in dampings}
        used = set()
        for c in checkpoints:
            method = choose_solver(request, self.solver, fitted=self._fits[c] is not None)
            used.add(method)
            parts = self._eigh_parts(c, dampings, idx) if method == "eigh" else self._cholesky_parts(c, dampings, idx)
            for lam, part in parts.items():
                totals[lam] = part if totals[lam] is None else totals[lam].add_(part)
        self.last_solver = "+".join(sorted(used))
        self.meter.set_held(self._held())
        return totals

    def _eigh_parts(self, c: int, dampings: list[float], idx: Tensor | None) -> dict[float, Tensor]:
        if self._fits[c] is None:
            train, query = self._features[c]
            solver = DampedSolver(train)
            projected = solver.project_queries(query)
            r = min(solver.n, solver.dim)  # beside the eigenbasis during the fit: the Gram matrix and syevd's 2 r^2
            self._note(c, *solver.held(), projected, extra=3 * r * r * 8)  # float64 workspace
            solver.release()  # the eigenbasis is read only by project_queries: drop it now
            self._fits[c], self._features[c] = (solver, projected), None
            self.meter.set_held(self._held())
        solver, projected = self._fits[c]
        out = {}
        for lam in dampings:
            a, b, factor = self._terms(c, lam)
            out[lam] = solver.scores(_select(projected, idx), a, b).mul_(factor)
        return out

    def _cholesky_parts(self, c: int, dampings: list[float], idx: Tensor | None) -> dict[float, Tensor]:
        train, query = self._features[c]
        matrix = system_matrix(train)  # [r, r] float64, once for the grid
        rhs = right_hand_side(train, _select(query, idx))  # [r, m'] float64
        feature = feature_side(*train.shape)
        precision = cholesky_precision(matrix.shape[0], rhs.shape[1])
        solutions = []  # f_c X(lambda) [r, m'] float64 per damping
        for i, lam in enumerate(dampings):
            a, b, factor = self._terms(c, lam)
            last = i == len(dampings) - 1  # M is not read again: a float64 solve may overwrite it
            x, report = damped_solve(matrix, rhs, a, b, feature, precision, consume=last)
            self.solve_reports.append(report)
            if report.fell_back:
                log.warning("checkpoint %d, damping %g: the float32 factor missed the %.0e score bound; solved in "
                            "float64", c, lam, REFINE_TOL)
            solutions.append(x.mul_(factor))
            extra = max(solve_working_bytes(matrix.shape[0], report, last), slab_bytes(*train.shape))
            self._note(c, matrix, rhs, *solutions, extra=extra)
        del matrix
        scores = to_scores(train, torch.cat(solutions, dim=1))  # one pass over Phi for the whole grid [n, D m']
        self._note(c, rhs, *solutions, scores, extra=slab_bytes(*train.shape))
        return dict(zip(dampings, scores.split(rhs.shape[1], dim=1)))

    def _note(self, c: int, *tensors: Tensor, extra: int = 0) -> None:
        self.meter.working(*tensors, extra=extra)
        self.checkpoint_peaks[c] = max(self.checkpoint_peaks[c], self.meter.held + storage_bytes(tensors) + extra)


class TRAKAttributor(_SolverAttributor):
    """TRAK (SPEC 1.2): (mean_c Phi_c K_c^{-1} phi_{z,c}) * mean_c Q_c, K_c = Phi_c^T Phi_c + lambda I.

    Features are divided by sqrt(num_params) here (folded into the solve), so num_params is required;
    train_weight is Q_c = 1 - p_c(y_i | x_i) [n], averaged over checkpoints.
    """

    damping_kind = "absolute"

    def __init__(self, solver: str = "auto"):
        super().__init__(solver)
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

    def _extra_held(self):
        return [] if self._weight_sum is None else [self._weight_sum]

    def _terms(self, c, damping):
        # The 1/sqrt(p) feature scale s is folded into the solve instead of copying the features:
        # (s Phi) ((s Phi)^T (s Phi) + lambda I)^{-1} (s Q)^T = s^2 * Phi (s^2 Phi^T Phi + lambda I)^{-1} Q^T.
        p = self._num_params[c]
        return (*absolute_terms(p, damping), 1.0 / p)

    def _finish(self, kernel):
        weight = (self._weight_sum / (self._count)).float().to(kernel.device)
        return kernel * weight[:, None]


class InfluenceAttributor(_SolverAttributor):
    """eFIM influence on one block (SPEC 1.1): Phi (F + lambda_eff I)^{-1} phi_z, averaged over checkpoints.

    F = Phi^T Phi / n and relative damping lambda_eff = lambda * trace(F) / k; in solver terms
    a = 1 / n and b = lambda * trace(Phi^T Phi) / (n k).
    """

    damping_kind = "relative"

    def __init__(self, solver: str = "auto"):
        super().__init__(solver)
        self._traces: list[float] = []  # trace(Phi_c^T Phi_c) = ||Phi_c||_F^2 per checkpoint (relative damping)

    def _add(self, train, query, train_weight, num_params):
        if not train.any():  # checked before storing, so a rejected checkpoint leaves no partial state
            raise GrassError(f"checkpoint {self._count}: train features are all zero, relative damping is undefined")
        self._store(train, query)
        self._traces.append(float(torch.linalg.vector_norm(train, dtype=torch.float64)) ** 2)

    def _terms(self, c, damping):
        return (*relative_terms(self._n, self._k, self._traces[c], damping), 1.0)


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
        self.checkpoint_peaks.append(self.meter.set_held(t for pair in self._features for t in pair))

    def _scores(self, damping, idx):
        total = None
        for train, query in self._features:
            part = train @ _select(query, idx).to(train.device).T
            total = part if total is None else total.add_(part)
        return total / len(self._features)
