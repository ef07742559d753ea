"""The preconditioner math of every method, once: a Gram matrix accumulated chunk by chunk, one
eigendecomposition, and any damping afterwards as a diagonal rescale (SPEC 1.1 steps 1-3, SPEC 1.2).

For train features Phi [n, k] (k <= n, the feature side), G = Phi^T Phi = V diag(e) V^T, and for damping
terms (a, b), a, b > 0:

    (a G + b I)^{-1} = V diag(1 / (a e + b)) V^T                                       [k, k]

Which (a, b) a method uses is its damping rule (`relative_terms`, `absolute_terms`): if_efim's
F = G / n with lambda_eff = lambda * trace(F) / k is a = 1 / n, b = lambda * trace(G) / (n k) (SPEC 1.1);
TRAK's Phi^T Phi + lambda I on features scaled by 1 / sqrt(p) is a = 1 / p, b = lambda (SPEC 1.2).
grad_dot has no preconditioner (identity).

grass.attribute.solver.DampedSolver (pipeline=lds, in memory) and grass.store_stages (pipeline=store, shards on
disk) both fit with `GramAccumulator` and damp with `FeatureEigen`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from grass.errors import GrassError

# Rows per float64 chunk: 2**24 doubles = 128 MiB, so the float64 copy of a large feature matrix is never
# materialized at once.
CHUNK_ELEMENTS = 1 << 24


def check_features(x: Tensor, what: str) -> None:
    """GrassError unless x is a 2-d floating-point matrix of finite values (naming the first bad rows)."""
    if x.ndim != 2:
        raise GrassError(f"{what} must be a 2-d matrix, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise GrassError(f"{what} must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten()[:5].tolist()
        raise GrassError(f"{what} holds non-finite values (first bad rows {bad})")


def row_chunks(x: Tensor) -> Iterable[Tensor]:
    """x [n, k] as consecutive row blocks of at most CHUNK_ELEMENTS elements (views, no copy)."""
    rows = max(1, CHUNK_ELEMENTS // max(1, x.shape[1]))
    return (x[start:start + rows] for start in range(0, x.shape[0], rows))


def relative_terms(n: int, dim: int, trace: float, damping: float) -> tuple[float, float]:
    """(a, b) of eFIM influence (SPEC 1.1): (F + lambda trace(F) / k I)^{-1} with F = G / n, trace = trace(G)."""
    return 1.0 / n, float(damping) * trace / (n * dim)


def absolute_terms(num_params: int, damping: float) -> tuple[float, float]:
    """(a, b) of TRAK (SPEC 1.2): (Phi_s^T Phi_s + lambda I)^{-1} for Phi_s = Phi / sqrt(p)."""
    return 1.0 / num_params, float(damping)


def damped_weights(eig: Tensor, a: float, b: float) -> Tensor:
    """1 / (a e + b), same shape and dtype as eig: the damped inverse on an eigenbasis; GrassError unless a, b > 0."""
    if not (a > 0 and b > 0):
        raise GrassError(f"damped solve needs a > 0 and b > 0, got a={a}, b={b}")
    return 1.0 / (a * eig + b)


@dataclass(frozen=True)
class FeatureEigen:
    """G = Phi^T Phi = basis diag(eig) basis^T of n train rows, and every damped inverse from it.

    basis: V [k, k] float64; eig: e [k] float64, clamped >= 0 (rounding can leave the eigenvalues of a PSD
    Gram matrix slightly negative; they are zero in exact math).
    """

    basis: Tensor
    eig: Tensor
    n: int

    @property
    def dim(self) -> int:
        return int(self.eig.numel())

    @property
    def trace(self) -> float:
        """trace(G) = sum of the eigenvalues."""
        return float(self.eig.sum())

    def weights(self, a: float, b: float) -> Tensor:
        """1 / (a e + b) [k] float64; GrassError unless a, b > 0."""
        return damped_weights(self.eig, a, b)

    def inverse(self, a: float, b: float) -> Tensor:
        """(a G + b I)^{-1} = V diag(1 / (a e + b)) V^T [k, k] float64."""
        return (self.basis * self.weights(a, b)) @ self.basis.T

    def relative_inverse(self, damping: float) -> Tensor:
        """(F + damping * trace(F) / k I)^{-1}, F = G / n [k, k] float64 (SPEC 1.1 step 2).

        GrassError when every feature is zero (trace 0: relative damping is undefined) or damping <= 0."""
        if not self.trace > 0:
            raise GrassError("every train feature is zero, relative damping is undefined")
        if not damping > 0:
            raise GrassError(f"relative damping must be > 0, got {damping}")
        return self.inverse(*relative_terms(self.n, self.dim, self.trace, damping))

    def absolute_inverse(self, num_params: int, damping: float) -> Tensor:
        """TRAK's (SPEC 1.2) s^2 (s^2 G + damping I)^{-1}, s^2 = 1 / num_params [k, k] float64: phi_i of it times q_z
        is <s phi_i, (Phi_s^T Phi_s + lambda I)^{-1} s q_z> for the features Phi_s = s Phi scaled by 1 / sqrt(p)."""
        a, b = absolute_terms(num_params, damping)
        return self.inverse(a, b) * a


class GramAccumulator:
    """G = sum over chunks of chunk^T chunk in float64 (SPEC 1.1 step 1), then one eigendecomposition.

    dim: k, the feature width; device: where G lives (the chunks are moved there).
    """

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        if dim < 1:
            raise GrassError(f"features must have at least one column, got dim={dim}")
        self.gram = torch.zeros(dim, dim, dtype=torch.float64, device=device)  # [k, k]
        self.n = 0

    def add(self, chunk: Tensor) -> None:
        """Adds chunk [rows, k] (any float dtype); the caller checks finiteness (check_features)."""
        if chunk.ndim != 2 or chunk.shape[1] != self.gram.shape[0]:
            raise GrassError(f"a chunk of features must be [rows, {self.gram.shape[0]}], got {tuple(chunk.shape)}")
        block = chunk.to(self.gram.device).double()
        self.gram += block.T @ block
        self.n += int(chunk.shape[0])

    def eigen(self) -> FeatureEigen:
        """The eigendecomposition of G; GrassError when no row was added."""
        if self.n == 0:
            raise GrassError("no train features were added: the Gram matrix is empty")
        e, v = torch.linalg.eigh(self.gram)
        return FeatureEigen(basis=v, eig=e.clamp_min(0.0), n=self.n)


def fit_eigen(chunks: Iterable[Tensor], dim: int, device: torch.device | str = "cpu") -> FeatureEigen:
    """FeatureEigen of the rows of every chunk [rows, dim], accumulated in order."""
    gram = GramAccumulator(dim, device)
    for chunk in chunks:
        gram.add(chunk)
    return gram.eigen()


def fit_block_eigens(chunks: Iterable[Mapping[str, Tensor]], layers: Mapping[str, int],
                     device: torch.device | str = "cpu") -> dict[str, FeatureEigen]:
    """{block: FeatureEigen} from chunks of per-block features {block: [rows, K_block]} (block-diagonal, SPEC 1.1).

    layers: {block: K_block}; every chunk must bring every block with the same rows. GrassError otherwise.
    """
    grams = {name: GramAccumulator(dim, device) for name, dim in layers.items()}
    for chunk in chunks:
        if set(chunk) != set(grams):
            raise GrassError(f"a chunk of features covers blocks {sorted(chunk)}, expected {sorted(grams)}")
        for name, gram in grams.items():
            gram.add(chunk[name])
    rows = {gram.n for gram in grams.values()}
    if len(rows) > 1:
        raise GrassError(f"blocks were given different numbers of rows: {sorted(rows)}")
    return {name: gram.eigen() for name, gram in grams.items()}
