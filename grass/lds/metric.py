"""Linear datamodeling score (SPEC 5) and a percentile bootstrap interval over queries.

Shapes: n train examples, m queries, M subsets. yhat[s, z] = sum_{i in S_s} scores[i, z]; the LDS of
query z is the Spearman correlation of yhat[:, z] with the ground truth y[:, z] over the M subsets.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor

from grass.errors import GrassError


@dataclass
class LDSResult:
    """mean: nanmean over defined queries; per_query [m] float64 (NaN = undefined); counts of both."""

    mean: float
    per_query: Tensor
    n_undefined: int
    n_queries: int


def _as_numpy64(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def spearman_columns(pred: Tensor, truth: Tensor) -> Tensor:
    """[m] float64 Spearman correlation of pred[:, z] with truth[:, z] (both [M, m]).

    Ties get average ranks; a column that is constant on either side (or holds NaN) gives NaN.
    """
    if pred.ndim != 2 or tuple(pred.shape) != tuple(truth.shape):
        raise GrassError(f"spearman_columns needs two [M, m] matrices of one shape, got "
                         f"{tuple(pred.shape)} and {tuple(truth.shape)}")
    p, t = _as_numpy64(pred), _as_numpy64(truth)
    if p.shape[0] == 0:
        return torch.full((p.shape[1],), float("nan"), dtype=torch.float64)
    # Any NaN in a column makes its ranks NaN, hence its correlation NaN (undefined, not silently dropped).
    rp = rankdata(p, axis=0, nan_policy="propagate")
    rt = rankdata(t, axis=0, nan_policy="propagate")
    constant = (np.ptp(rp, axis=0) == 0) | (np.ptp(rt, axis=0) == 0)  # NaN columns are not constant here
    rp -= rp.mean(axis=0)
    rt -= rt.mean(axis=0)
    denom = np.sqrt((rp * rp).sum(axis=0) * (rt * rt).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(constant, np.nan, (rp * rt).sum(axis=0) / np.where(constant, 1.0, denom))
    return torch.from_numpy(np.clip(rho, -1.0, 1.0))


def lds(scores: Tensor, subset_masks: Tensor, ground_truth: Tensor) -> LDSResult:
    """LDS of scores [n, m] given subset_masks [M, n] (bool) and ground_truth [M, m]."""
    if scores.ndim != 2 or subset_masks.ndim != 2 or ground_truth.ndim != 2:
        raise GrassError(f"lds needs scores [n, m], subset_masks [M, n], ground_truth [M, m]; got "
                         f"{tuple(scores.shape)}, {tuple(subset_masks.shape)}, {tuple(ground_truth.shape)}")
    n, m = scores.shape
    count = subset_masks.shape[0]
    if subset_masks.shape[1] != n or tuple(ground_truth.shape) != (count, m):
        raise GrassError(f"lds shape mismatch: scores {tuple(scores.shape)} [n, m], subset_masks "
                         f"{tuple(subset_masks.shape)} [M, n], ground_truth {tuple(ground_truth.shape)} [M, m]")
    # float64 so subset sums of nearly equal scores do not create ties that float32 rounding would invent.
    yhat = subset_masks.to(device=scores.device, dtype=torch.float64) @ scores.double()  # [M, m]
    per_query = spearman_columns(yhat, ground_truth)
    defined = ~torch.isnan(per_query)
    n_defined = int(defined.sum())
    mean = float(per_query[defined].mean()) if n_defined else math.nan
    return LDSResult(mean=mean, per_query=per_query, n_undefined=m - n_defined, n_queries=m)


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over the defined (non-NaN) values; (nan, nan) if none."""
    if not 0.0 < level < 1.0:
        raise GrassError(f"bootstrap level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise GrassError(f"bootstrap needs n_boot >= 1, got {n_boot}")
    data = _as_numpy64(values).ravel()
    data = data[~np.isnan(data)]
    if data.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)  # [n_boot]
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)
