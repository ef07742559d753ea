"""The attributor's memory by explicit tensor byte accounting (issue #16, "memory that follows the work").

tracemalloc does not see torch's allocations, so the attributor counts bytes itself: `held` is the storage of
every tensor it keeps between calls (deduplicated by storage, so a view and its base count once; tensors it
only references, such as the caller's features, count too: they stay alive because of it), and `peak` is the
largest held + working set seen so far, where the working set is what a solve allocates on top (the [r, r]
system matrices, factors, solutions) as the solver reports it through `working(...)`.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

MB = 1 << 20


def storage_bytes(tensors: Iterable[Tensor | None]) -> int:
    """Bytes of the distinct storages behind the tensors (None skipped)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        storage = t.untyped_storage()
        key = (storage.data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


class MemoryMeter:
    """held / peak bytes of one attributor (see the module docstring)."""

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0

    def set_held(self, tensors: Iterable[Tensor | None]) -> int:
        """Record what is kept now; returns the held bytes."""
        self.held = storage_bytes(tensors)
        self.peak = max(self.peak, self.held)
        return self.held

    def working(self, *tensors: Tensor | None, extra: int = 0) -> None:
        """A solve has these tensors (and `extra` bytes it allocated inside) alive on top of what is held: raise
        the peak if this is the largest so far."""
        self.peak = max(self.peak, self.held + storage_bytes(tensors) + extra)

    def describe(self) -> str:
        return f"holds {self.held / MB:.0f} MB, peak {self.peak / MB:.0f} MB (tensor byte accounting)"
