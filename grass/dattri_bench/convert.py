"""dattri's benchmark files -> the tensors grass keeps: subset masks, ground truth, state dicts with grass's keys.

The models zip (`<id>_half.zip`) holds `<i>/model_weights_0.pt` (a state dict) and, when dattri's retraining wrote
it, `<i>/indices.txt` (the train rows of subset i, one per line), for i = 0..M-1; folder i belongs to row i of
indices_lds.pt and target_values_lds.pt (dattri.metric.calculate_lds_ground_truth walks them in that order).
A leading folder inside the zip is accepted. Every function raises GrassError for a file that breaks this layout.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import torch

from grass.errors import GrassError

_WEIGHTS = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<index>\d+)/model_weights_0\.pt$")


class ModelsZip:
    """Read-only view of a models_half zip: count, state_dict(i), indices(i)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as e:
            raise GrassError(f"{self.path} is not a readable zip ({type(e).__name__}: {e}); delete it to fetch it "
                             f"again") from e
        self._members: dict[int, str] = {}
        prefixes = set()
        for name in self._zip.namelist():
            match = _WEIGHTS.match(name)
            if match:
                self._members[int(match["index"])] = name
                prefixes.add(match["prefix"])
        count = len(self._members)
        if count == 0 or len(prefixes) != 1 or sorted(self._members) != list(range(count)):
            raise GrassError(f"{self.path} does not hold dattri's subset models as <i>/model_weights_0.pt for "
                             f"i = 0..M-1 in one folder (found {sorted(self._members)[:10]} under "
                             f"{sorted(prefixes) or 'no folder'})")
        self.prefix = prefixes.pop()

    def __len__(self) -> int:
        return len(self._members)

    def close(self) -> None:
        self._zip.close()

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """The state dict of subset model i, on the CPU, with dattri's keys."""
        try:
            state = torch.load(io.BytesIO(self._zip.read(self._members[i])), map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated member, or pickled objects beyond tensors
            raise GrassError(f"cannot read {self._members[i]} in {self.path} ({type(e).__name__}: {e})") from e
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise GrassError(f"{self._members[i]} in {self.path} is not a state dict of tensors")
        return dict(state)

    def indices(self, i: int) -> list[int] | None:
        """The train rows subset model i saw, from its indices.txt, or None when the zip has none."""
        name = f"{self.prefix}{i}/indices.txt"
        if name not in self._zip.namelist():
            return None
        return [int(line) for line in self._zip.read(name).decode("utf-8").split()]


def map_keys(state: dict[str, torch.Tensor], key_map: tuple) -> dict[str, torch.Tensor]:
    """Rename keys by prefix, e.g. (("fc1.", "1."),): fc1.weight -> 1.weight; keys matching no prefix are kept."""
    out = {}
    for key, value in state.items():
        for old, new in key_map:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def subset_masks(indices: torch.Tensor, n_train: int, source: str = "indices_lds.pt") -> torch.Tensor:
    """indices LongTensor [M, S] (train rows per subset) -> bool [M, n_train]; every row distinct and in range."""
    if not isinstance(indices, torch.Tensor) or indices.ndim != 2 or indices.is_floating_point():
        raise GrassError(f"{source} must be an integer tensor [M, subset size]; got "
                         f"{type(indices).__name__} {tuple(getattr(indices, 'shape', ()))}")
    indices = indices.long()
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n_train):
        raise GrassError(f"{source} names train rows {int(indices.min())}..{int(indices.max())}, outside the "
                         f"{n_train} train rows of the dataset")
    masks = torch.zeros(indices.shape[0], n_train, dtype=torch.bool)
    masks.scatter_(1, indices, True)
    repeated = (masks.sum(1) != indices.shape[1]).nonzero().flatten()
    if len(repeated):
        raise GrassError(f"{source}: subset {int(repeated[0])} lists a train row twice; LDS subsets are sets")
    return masks


def ground_truth(targets: torch.Tensor, count: int, n_query: int, source: str = "target_values_lds.pt"):
    """target_values float [M, n_query] (minus the query loss per subset model) -> float32, shape checked."""
    if not isinstance(targets, torch.Tensor) or tuple(targets.shape) != (count, n_query):
        raise GrassError(f"{source} must be a tensor [{count} subsets, {n_query} queries]; got "
                         f"{type(targets).__name__} {tuple(getattr(targets, 'shape', ()))}")
    if not torch.isfinite(targets).all():
        raise GrassError(f"{source} holds non-finite values")
    return targets.float()
