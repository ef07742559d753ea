"""One eigendecomposition of the train Gram matrix, reused for every damping value (SPEC 1.1).

Scores for train features Phi [n, k] and query features Q [m, k] under damping (a, b), a, b > 0:

    scores = Phi (a Phi^T Phi + b I)^{-1} Q^T                          [n, m]

Feature side (k <= n): eigh(Phi^T Phi) = V diag(e) V^T, so (a Phi^T Phi + b I)^{-1} = V diag(1/(a e + b)) V^T
and scores = (Phi V) diag(1/(a e + b)) (Q V)^T, i.e. L = Phi V [n, k], R = Q V [m, k].

Example side (k > n): eigh(Phi Phi^T) = U diag(e) U^T. The push-through identity
(a Phi^T Phi + b I)^{-1} Phi^T = Phi^T (a Phi Phi^T + b I)^{-1} and the symmetry of the inverse give
Phi (a Phi^T Phi + b I)^{-1} = (a Phi Phi^T + b I)^{-1} Phi, so scores = U diag(1/(a e + b)) U^T Phi Q^T,
i.e. L = U [n, n], R = Q Phi^T U [m, n].

Both are exact (no division by singular values), and a new (a, b) costs one diagonal rescale and a matmul.
The eigendecomposition is also why SPEC 1.1's Cholesky retry never triggers here: with b > 0 every
eigenvalue a e + b is positive, so there is nothing to fall back from. Once the queries are projected,
`release()` drops the eigenbasis (only project_queries reads it). This is the float64 reference; for a few
dampings one Cholesky factorization each is cheaper (grass.attribute.cholesky, chosen by grass.attribute.cost).
"""

import torch
from torch import Tensor

from grass.attribute.gram import CHUNK_ELEMENTS, check_features, damped_weights, fit_eigen, row_chunks
from grass.errors import GrassError


class DampedSolver:
    """Answers Phi (a Phi^T Phi + b I)^{-1} Q^T for any a, b > 0 from one eigendecomposition.

    train_features: Phi [n, k], any float dtype; the decomposition runs in float64 on Phi's device. The
    feature side fits with grass.attribute.gram (the same code pipeline=store fits its shards with).
    """

    def __init__(self, train_features: Tensor):
        check_features(train_features, "train features")
        phi = train_features
        self.n, self.dim = int(phi.shape[0]), int(phi.shape[1])
        if self.n == 0 or self.dim == 0:
            raise GrassError(f"train features must be non-empty, got shape {tuple(phi.shape)}")
        self._feature_side = self.dim <= self.n
        if self._feature_side:
            eigen = fit_eigen(row_chunks(phi), self.dim, phi.device)
            e, v = eigen.eig, eigen.basis
            self._basis = v  # V [k, k] float64, maps queries: R = Q V; dropped by release()
            # L = Phi V is kept in float32, converted chunk by chunk (no [n, k] float64 copy): it is the one [n, k]
            # object held per checkpoint, and float64 would double it for no gain in the final float32 scores.
            self._left = torch.cat([(block.double() @ v).float() for block in row_chunks(phi)])
            self._phi = None
        else:
            cols = max(1, CHUNK_ELEMENTS // self.n)
            gram = torch.zeros(self.n, self.n, dtype=torch.float64, device=phi.device)  # [n, n]
            for start in range(0, self.dim, cols):
                block = phi[:, start:start + cols].double()
                gram += block @ block.T
            e, u = torch.linalg.eigh(gram)
            e = e.clamp_min(0.0)  # rounding can leave PSD eigenvalues slightly negative; zero in exact math
            self._basis = u  # U [n, n] float64, maps (Q Phi^T) to R; dropped by release()
            self._left = u.float()  # L = U, float32 for the same memory reason as above
            self._phi = phi  # needed to project queries: R = Q Phi^T U; dropped by release()
        self._eig = e  # [r] float64, r = min(n, k), >= 0
        self.trace = float(self._eig.sum())  # trace(Phi^T Phi) = trace(Phi Phi^T) = sum of e

    def project_queries(self, queries: Tensor) -> Tensor:
        """R [m, r] float32 (r = min(n, k)) for query features Q [m, k]; compute once, reuse over dampings."""
        check_features(queries, "query features")
        if self._basis is None:
            raise GrassError("the eigenbasis was released; project queries before release()")
        if queries.shape[1] != self.dim:
            raise GrassError(f"query features have dim {queries.shape[1]}, train features {self.dim} "
                             f"(shapes {tuple(queries.shape)} vs [{self.n}, {self.dim}])")
        q = queries.to(self._basis.device)
        if self._feature_side:
            parts = [block.double() @ self._basis for block in row_chunks(q)]
        else:
            cols = max(1, CHUNK_ELEMENTS // max(self.n, q.shape[0]))
            qphi = torch.zeros(q.shape[0], self.n, dtype=torch.float64, device=q.device)  # Q Phi^T [m, n]
            for start in range(0, self.dim, cols):
                qphi += q[:, start:start + cols].double() @ self._phi[:, start:start + cols].double().T
            parts = [qphi @ self._basis]
        if not parts:
            return torch.zeros(0, self._eig.numel(), dtype=torch.float32, device=q.device)
        return torch.cat(parts).float()

    def release(self) -> None:
        """Drop what only project_queries reads: the float64 eigenbasis (V [k, k] or U [n, n]) and the reference to
        Phi (example side). Scores from projected queries still work; later projections fail. At the default size
        (k = 4096) V is 128 MiB per checkpoint, more than the L and R kept for scoring."""
        self._basis = None
        self._phi = None

    def held(self) -> list[Tensor]:
        """The tensors this solver keeps (for grass.attribute.memory)."""
        return [t for t in (self._left, self._eig, self._basis, self._phi) if t is not None]

    def scores(self, projected: Tensor, a: float, b: float) -> Tensor:
        """[n, m] float32: Phi (a Phi^T Phi + b I)^{-1} Q^T, from projected = project_queries(Q) [m, r]."""
        if projected.ndim != 2 or projected.shape[1] != self._eig.numel():
            raise GrassError(f"projected queries must be [m, {self._eig.numel()}], got {tuple(projected.shape)}")
        weight = damped_weights(self._eig, a, b).float()  # [r]
        # scale the small side (R [m, r]), not L [n, r]: no [n, r] temporary per damping
        return self._left @ (projected.to(self._left.device) * weight).T
