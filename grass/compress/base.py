"""The Compressor contract every method implements (SPEC section 3)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from grass.errors import GrassError


class Compressor(ABC):
    """A seeded linear map applied to each row: x [B, in_dim] -> [B, out_dim] (float32).

    Subclasses implement `_compress` and, if they have extra knobs, `_extra_fingerprint`.
    Configs build them as Hydra partials: the pipeline supplies (in_dim, out_dim, seed) once the
    model's dimensions are known.
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int = 0) -> None:
        in_dim, out_dim = int(in_dim), int(out_dim)
        if in_dim <= 0:
            raise GrassError(f"{type(self).__name__}: in_dim must be positive, got {in_dim}")
        if out_dim <= 0:
            raise GrassError(f"{type(self).__name__}: proj_dim (out_dim) must be positive, got {out_dim}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.seed = int(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise GrassError(
                f"{type(self).__name__} expects input [B, {self.in_dim}], got {list(x.shape)}"
            )
        return self._compress(x)

    @abstractmethod
    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        """Map x [B, in_dim] to [B, out_dim] in float32."""

    def _extra_fingerprint(self) -> dict:
        return {}

    def fingerprint(self) -> dict:
        """Everything that determines the map: equal fingerprints mean equal outputs."""
        fp = {"class": type(self).__name__, "in_dim": self.in_dim, "out_dim": self.out_dim, "seed": self.seed}
        fp.update(self._extra_fingerprint())
        return fp

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.fingerprint().items() if k != "class")
        return f"{type(self).__name__}({args})"
