"""Block-diagonal attribution over linear layers (SPEC 1.1): one attributor per layer, scores summed.

Each layer block gets its own preconditioner (for if_efim: its own relative damping lambda * trace(F_l) / K_l
and its own eigendecomposition, computed once), so a damping grid still costs one rescale per block.
"""

from collections.abc import Callable, Mapping

from torch import Tensor

from grass.attribute.attributors import Attributor
from grass.attribute.sources import FeatureSource
from grass.errors import GrassError


class BlockwiseAttributor:
    """Sums the scores of per-layer attributors made by `factory()`; same scores() contract as Attributor."""

    def __init__(self, factory: Callable[[], Attributor]) -> None:
        self._factory = factory
        self._blocks: dict[str, Attributor] = {}
        probe = factory()
        if probe.damping_kind == "absolute":
            raise GrassError(f"{type(probe).__name__} uses absolute damping over whole-model gradients; per-layer "
                             "blocks need an attributor with relative or no damping (tda=if_efim or tda=grad_dot)")
        self.damping_kind = probe.damping_kind

    @property
    def layers(self) -> list[str]:
        return list(self._blocks)

    @property
    def checkpoints(self) -> int:
        return min((b.checkpoints for b in self._blocks.values()), default=0)

    def add_checkpoint(self, train: Mapping[str, Tensor], query: Mapping[str, Tensor]) -> None:
        """train {layer: [n, K_l]}, query {layer: [m, K_l]}; every checkpoint must bring the same layers."""
        if set(train) != set(query):
            raise GrassError(f"train and query features cover different layers: {sorted(set(train) ^ set(query))}")
        if self._blocks and set(train) != set(self._blocks):
            raise GrassError(f"checkpoint layers {sorted(set(train) ^ set(self._blocks))} differ from the first "
                             "checkpoint's")
        for name in train:
            block = self._blocks.setdefault(name, self._factory())
            try:
                block.add_checkpoint(train[name], query[name])
            except GrassError as e:
                raise GrassError(f"layer '{name}': {e}") from None

    def add_source(self, source: FeatureSource) -> None:
        """add_checkpoint with every block of one checkpoint's feature source (in memory: no copy)."""
        self.add_checkpoint({name: source.train(name) for name in source.blocks}, source.queries())

    def scores(self, damping: float | None, query_idx: Tensor | None = None) -> Tensor:
        """[n, m'] float32: the sum over layer blocks of each block's scores."""
        if not self._blocks:
            raise GrassError("no checkpoint was added to the attributor")
        total = None
        for block in self._blocks.values():
            part = block.scores(damping, query_idx)
            total = part if total is None else total.add_(part)
        return total

    def scores_grid(self, dampings, query_idx: Tensor | None = None) -> dict[float, Tensor]:
        """{lambda: scores(lambda, query_idx)} over a damping grid: each block answers the whole grid at once (one
        Gram matrix per block and checkpoint for the Cholesky solver, one rescale per value for eigh)."""
        if not self._blocks:
            raise GrassError("no checkpoint was added to the attributor")
        total: dict[float, Tensor] = {}
        for block in self._blocks.values():
            for lam, part in block.scores_grid(dampings, query_idx).items():
                total[lam] = part if lam not in total else total[lam].add_(part)
        return total

    @property
    def peak_bytes(self) -> int:
        """The sum of the blocks' peaks (grass.attribute.memory; an upper bound: blocks are solved one at a time)."""
        return sum(block.peak_bytes for block in self._blocks.values())

    @property
    def checkpoint_peaks(self) -> list[int]:
        """Per checkpoint, the sum over blocks of each block's peak while solving it (bytes)."""
        return [sum(peaks) for peaks in zip(*(block.checkpoint_peaks for block in self._blocks.values()))]

    @property
    def last_solver(self) -> str | None:
        used = {block.last_solver for block in self._blocks.values() if getattr(block, "last_solver", None)}
        return "+".join(sorted(used)) or None
